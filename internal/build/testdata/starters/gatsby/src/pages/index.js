import * as React from 'react'
import { Link } from 'gatsby'

export default function Index() {
  return <main><h1>Gatsby</h1><Link to="/about/">About</Link></main>
}
