// Pentad analytics tracker: cookieless, no storage, one POST per event (text/plain: no CORS preflight).
// <script defer data-domain="example.com" src="https://pentad.example/analytics/js/script.js"></script>
// Optional: data-api (a first-party proxy path), data-respect-gpc. Opt out: localStorage.pentad_ignore="true".
// Custom events: pentad("Signup", {props: {plan: "pro"}, revenue: {amount: 9.5, currency: "EUR"}}).
(function (w, d, l) {
  var s = d.currentScript, a = function (k) { return s.getAttribute(k) };
  var api = a("data-api") || new URL(s.src).origin + "/api/analytics/event";
  var dom = a("data-domain") || l.hostname, last, q = w.pentad && w.pentad.q;
  var ext = /\.(__EXT__)$/i;
  function send(n, o) {
    try { if (localStorage.pentad_ignore == "true") return } catch (e) {}
    if (a("data-respect-gpc") != null && navigator.globalPrivacyControl) return;
    var b = { n: n, u: l.href, d: dom, r: d.referrer || null };
    o = o || {};
    if (navigator.webdriver) b.w = true;
    if (o.props) b.p = o.props;
    if (o.revenue) b.v = o.revenue;
    fetch(api, { method: "POST", body: JSON.stringify(b), headers: { "Content-Type": "text/plain" }, keepalive: true })["catch"](function () {});
  }
  function page() { if (last != l.pathname) { last = l.pathname; send("pageview") } }
  var h = w.history, push = h.pushState;
  if (push) { h.pushState = function () { push.apply(this, arguments); page() }; w.addEventListener("popstate", page) }
  d.addEventListener("click", function (e) {
    var t = e.target.closest && e.target.closest("a[href]"), u;
    if (!t) return;
    u = new URL(t.href, l.href);
    if (ext.test(u.pathname)) send("File Download", { props: { url: u.href } });
    else if (u.host != l.host && /^http/.test(u.protocol)) send("Outbound Link: Click", { props: { url: u.href } });
  });
  w.pentad = send;
  if (q) for (var i = 0; i < q.length; i++) send.apply(0, q[i]);
  page();
})(window, document, location);
