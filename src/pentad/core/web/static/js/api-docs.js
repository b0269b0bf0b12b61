// Starts Swagger UI (loaded before this script from /static/vendor) on the page's OpenAPI document.
const root = document.getElementById("swagger-ui");

window.SwaggerUIBundle({
  url: root.dataset.openapiUrl,
  domNode: root,
  deepLinking: true,
  presets: [window.SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  validatorUrl: null,
  tryItOutEnabled: false,
  persistAuthorization: false,
});
