// @ts-check
/** @type {import('@docusaurus/types').Config} */
const config = {
  title: 'Docusaurus',
  url: 'https://example.com',
  baseUrl: '/',
  onBrokenLinks: 'throw',
  presets: [['classic', { docs: { routeBasePath: '/' }, blog: false }]],
}

module.exports = config
