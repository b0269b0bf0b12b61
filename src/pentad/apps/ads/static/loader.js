// Pentad ads loader (docs/ads.md "Serving"): <ins data-pentad-zone="ZONE_ID"></ins> + this script. Each slot
// asks /api/ads/decide, renders the ad (or a GPT slot with the ad as fallback) and posts the impression token
// to /api/ads/v once it was viewable. Slots added later: pentadAds.load(element).
(function (d, w) {
  var me = d.currentScript, base = me ? new URL(me.src).origin : "", count = 0;

  function beacon(token) {
    var url = base + "/api/ads/v";
    if (!(navigator.sendBeacon && navigator.sendBeacon(url, token))) {
      fetch(url, { method: "POST", body: token, keepalive: true, credentials: "omit" });
    }
  }

  function watch(el, a) {
    var need = a.viewable.seconds * 1000, ratio = a.viewable.ratio, timer = 0, seen = 0, done = 0, o;
    function check() {
      var ok = seen && d.visibilityState == "visible";
      if (ok && !timer && !done) {
        timer = setTimeout(function () {
          done = 1;
          o.disconnect();
          d.removeEventListener("visibilitychange", check);
          beacon(a.impression);
        }, need);
      }
      if (!ok && timer) {
        clearTimeout(timer);
        timer = 0;
      }
    }
    o = new IntersectionObserver(function (list) {
      var e = list[list.length - 1];
      seen = e.isIntersecting && e.intersectionRatio >= ratio * 0.99;
      check();
    }, { threshold: [0, ratio, 1] });
    o.observe(el);
    d.addEventListener("visibilitychange", check);
  }

  function make(tag, parent, text) {
    var e = d.createElement(tag);
    if (text) e.textContent = text;
    parent.appendChild(e);
    return e;
  }

  function render(el, a) {
    var ad = a.ad, s = el.style, link, img, pic, f;
    if (!ad) return;
    el.textContent = "";
    s.display = "inline-block";
    s.width = a.width + "px";
    s.height = a.height + "px";
    s.overflow = "hidden";
    if (ad.html) {
      f = make("iframe", el);
      f.setAttribute("sandbox", "allow-scripts allow-popups allow-popups-to-escape-sandbox");
      f.src = ad.html + "?clickTAG=" + encodeURIComponent(ad.click);
      f.width = a.width;
      f.height = a.height;
      f.title = ad.alt || "Ad";
      f.style.border = 0;
    } else {
      link = make("a", el);
      link.href = ad.click;
      link.target = "_blank";
      link.rel = "noopener sponsored";
      if (ad.image) {
        pic = make("picture", link);
        (ad.sources || []).forEach(function (x) {
          var e = make("source", pic);
          e.type = x.type;
          e.srcset = x.srcset;
          e.sizes = a.width + "px";
        });
        img = make("img", pic);
        img.src = ad.image;
        img.alt = ad.alt;
        img.width = a.width;
        img.height = a.height;
        img.style.objectFit = "contain";
      } else {
        make("b", link, ad.headline);
        make("div", link, ad.body);
      }
    }
    el.setAttribute("data-pentad-ad", ad.id);
    watch(el, a);
  }

  function gpt(el, a) {
    var g = w.googletag, div, id;
    if (!g) return render(el, a);
    div = make("div", el);
    id = div.id = "pentad-gpt-" + ++count;
    g.cmd = g.cmd || [];
    g.cmd.push(function () {
      var slot = g.defineSlot(a.gpt.ad_unit, a.gpt.sizes, id), t = a.gpt.targeting, k;
      slot.addService(g.pubads());
      for (k in t) slot.setTargeting(k, t[k]);
      g.pubads().addEventListener("slotRenderEnded", function (e) {
        if (e.slot === slot && e.isEmpty) render(el, a);
      });
      g.enableServices();
      g.display(id);
    });
  }

  function load(el) {
    var u, kv = el.getAttribute("data-pentad-kv") || "";
    if (el.getAttribute("data-pentad-state")) return;
    el.setAttribute("data-pentad-state", "1");
    u = base + "/api/ads/decide?z=" + encodeURIComponent(el.getAttribute("data-pentad-zone")) +
      "&p=" + encodeURIComponent(location.pathname + location.search) +
      (d.referrer ? "&r=" + encodeURIComponent(d.referrer) : "");
    kv.split(",").forEach(function (x) {
      if (x.trim()) u += "&kv=" + encodeURIComponent(x.trim());
    });
    fetch(u, { credentials: "omit" }).then(function (r) {
      return r.status == 200 ? r.json() : null;
    }).then(function (a) {
      if (a) (a.gpt ? gpt : render)(el, a);
    }).catch(function () {});
  }

  [].forEach.call(d.querySelectorAll("ins[data-pentad-zone]"), load);
  w.pentadAds = { load: load };
})(document, window);
