import * as React from 'react'

export default function About() {
  return <h1>About Gatsby</h1>
}
