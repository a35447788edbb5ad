// The few lines of JavaScript embedded in a flame graph SVG: click a frame to zoom into it (its
// callees fill the width, its callers stay as a faded band), "Reset zoom" to go back, "Search"
// for a regular expression (matching frames turn magenta and the share they cover is shown),
// and a details line for the frame under the pointer. Without script (an <img>, a viewer) the
// SVG is a complete static picture with tooltips.
//
// Frames are <g class="f" data-v="value"> holding <title> (name on the first line), <rect>, <text>.
// The layout numbers come from the renderer through data attributes on the root <svg>.

export const FLAME_SCRIPT = String.raw`
(function () {
  var svg = document.documentElement;
  var pad = +svg.getAttribute('data-pad'), width = +svg.getAttribute('data-width');
  var charW = +svg.getAttribute('data-charw'), total = +svg.getAttribute('data-total');
  var frames = Array.prototype.slice.call(document.querySelectorAll('g.f'));
  var details = document.getElementById('details'), matched = document.getElementById('matched');
  var unzoomBtn = document.getElementById('unzoom');
  frames.forEach(function (g) {
    var r = g.querySelector('rect');
    g._x = +r.getAttribute('x'); g._w = +r.getAttribute('width'); g._y = +r.getAttribute('y');
    g._fill = r.getAttribute('fill');
    g._info = g.querySelector('title').textContent;
    g._name = g._info.split('\n')[0];
  });
  function fit(g, w) {
    var t = g.querySelector('text');
    if (!t) return;
    var n = Math.floor((w - 6) / charW), name = g._name;
    t.textContent = n >= name.length ? name : n >= 3 ? name.slice(0, n - 2) + '..' : '';
  }
  function place(g, x, w) {
    var r = g.querySelector('rect'), t = g.querySelector('text');
    r.setAttribute('x', x.toFixed(2)); r.setAttribute('width', w.toFixed(2));
    if (t) t.setAttribute('x', (x + 3).toFixed(2));
    fit(g, w);
  }
  function zoom(z) {
    var scale = (width - 2 * pad) / z._w;
    frames.forEach(function (g) {
      g.classList.remove('hide'); g.classList.remove('parent');
      var inside = g._x >= z._x - 1e-6 && g._x + g._w <= z._x + z._w + 1e-6;
      if (g._y > z._y) { // nearer the root: a caller if it spans the zoomed frame
        if (g._x <= z._x + 1e-6 && g._x + g._w >= z._x + z._w - 1e-6) { g.classList.add('parent'); place(g, pad, width - 2 * pad); }
        else g.classList.add('hide');
      } else if (inside) place(g, pad + (g._x - z._x) * scale, g._w * scale);
      else g.classList.add('hide');
    });
    unzoomBtn.classList.remove('hide');
  }
  function unzoom() {
    frames.forEach(function (g) { g.classList.remove('hide'); g.classList.remove('parent'); place(g, g._x, g._w); });
    unzoomBtn.classList.add('hide');
  }
  function search(text) {
    var re = null;
    if (text) {
      try { re = new RegExp(text); } catch (e) { alert('not a regular expression: ' + e.message); return; }
    }
    var hits = [];
    frames.forEach(function (g) {
      var r = g.querySelector('rect');
      var hit = re !== null && re.test(g._name);
      r.setAttribute('fill', hit ? 'rgb(230,0,230)' : g._fill);
      if (hit) hits.push(g);
    });
    // Count each matched frame once: skip those inside a matched caller's span.
    hits.sort(function (a, b) { return a._x - b._x || b._w - a._w; });
    var sum = 0, end = -1;
    hits.forEach(function (g) { if (g._x >= end - 1e-6) { sum += +g.getAttribute('data-v'); end = g._x + g._w; } });
    matched.textContent = re === null ? '' : 'Matched: ' + (total > 0 ? (100 * sum / total).toFixed(2) : '0.00') + '% (' + hits.length + ' frames)';
    svg.setAttribute('data-matched', re === null ? '' : String(total > 0 ? sum / total : 0));
  }
  frames.forEach(function (g) {
    g.addEventListener('click', function () { zoom(g); });
    g.addEventListener('mouseover', function () { details.textContent = g._info.replace(/\n/g, '  |  '); });
    g.addEventListener('mouseout', function () { details.textContent = ' '; });
  });
  unzoomBtn.addEventListener('click', unzoom);
  document.getElementById('search').addEventListener('click', function () {
    var q = prompt('Search frames (regular expression; empty clears)', '');
    if (q !== null) search(q);
  });
  svg.flame = { zoom: function (i) { zoom(frames[i]); }, unzoom: unzoom, search: search };
})();
`;
