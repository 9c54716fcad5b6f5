module.exports = { siteMetadata: { title: 'Gatsby' }, plugins: [] }
