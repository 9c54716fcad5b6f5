export default function About() {
  return <h1>About Next.js</h1>
}
