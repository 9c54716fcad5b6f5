// @ts-check
/** @type {import('@docusaurus/types').Config} */
const config = {
  title: 'Docusaurus',
  url: 'https://example.com',
  baseUrl: '/',
  onBrokenLinks: 'throw',
  presets: [['classic', { docs: { sidebarPath: undefined }, blog: false, theme: {} }]],
}

module.exports = config
