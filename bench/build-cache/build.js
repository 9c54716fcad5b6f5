// A build that really uses its dependencies, so a broken install fails it.
const fs = require("fs");
const { marked } = require("marked");
const React = require("react");
const { renderToStaticMarkup } = require("react-dom/server");
const _ = require("lodash");
const { format } = require("date-fns");
fs.mkdirSync("dist", { recursive: true });
const body = renderToStaticMarkup(React.createElement("main", null, _.capitalize("cache bench")));
fs.writeFileSync("dist/index.html", marked.parse("# " + format(new Date(2020, 0, 2), "yyyy-MM-dd")) + body);
