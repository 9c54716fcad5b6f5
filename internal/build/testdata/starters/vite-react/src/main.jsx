import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import './index.css'

// One client route: /about is rendered by the app, not by a file.
function App() {
  return location.pathname === '/about' ? <h1>About (client route)</h1> : <h1>Vite + React</h1>
}

createRoot(document.getElementById('root')).render(<StrictMode><App /></StrictMode>)
