import React from 'react'
import ReactDOM from 'react-dom/client'

function App() {
  return window.location.pathname === '/about' ? <h1>About (client route)</h1> : <h1>Create React App</h1>
}

ReactDOM.createRoot(document.getElementById('root')).render(<App />)
