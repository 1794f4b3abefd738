// The book's plotly figures follow its light/dark theme (pydata-sphinx-theme sets data-theme on
// <html>): backgrounds, text and grid lines are restyled whenever the theme changes, and put back
// exactly as the figure was drawn when it changes back to light.
(function () {
  "use strict";
  const DARK = { paper: "#14181e", plot: "#1b2028", font: "#ced6dd", grid: "#39404a", line: "#6c757d" };

  function isDark() {
    return document.documentElement.dataset.theme === "dark";
  }

  function axisKeys(layout) {
    return Object.keys(layout).filter((k) => /^[xy]axis\d*$/.test(k));
  }

  function sceneKeys(layout) {
    return Object.keys(layout).filter((k) => /^scene\d*$/.test(k));
  }

  function remember(gd) {
    // The light look, as drawn: the values the figure had before the first restyle.
    const fl = gd._fullLayout;
    const saved = { paper_bgcolor: fl.paper_bgcolor, plot_bgcolor: fl.plot_bgcolor, "font.color": fl.font.color };
    for (const k of axisKeys(fl)) {
      saved[k + ".gridcolor"] = fl[k].gridcolor;
      saved[k + ".zerolinecolor"] = fl[k].zerolinecolor;
      saved[k + ".linecolor"] = fl[k].linecolor;
    }
    for (const s of sceneKeys(fl)) {
      saved[s + ".bgcolor"] = fl[s].bgcolor;
      for (const a of ["xaxis", "yaxis", "zaxis"]) {
        saved[s + "." + a + ".gridcolor"] = fl[s][a].gridcolor;
        saved[s + "." + a + ".backgroundcolor"] = fl[s][a].backgroundcolor;
      }
    }
    return saved;
  }

  function darkLook(saved) {
    const update = {};
    for (const key of Object.keys(saved)) {
      if (key === "paper_bgcolor" || key.endsWith(".bgcolor")) update[key] = DARK.paper;
      else if (key === "plot_bgcolor" || key.endsWith(".backgroundcolor")) update[key] = DARK.plot;
      else if (key === "font.color") update[key] = DARK.font;
      else if (key.endsWith(".linecolor")) update[key] = DARK.line;
      else update[key] = DARK.grid;
    }
    return update;
  }

  function restyle(gd) {
    if (!gd._fullLayout || !window.Plotly) return;
    if (!gd._ncreproLight) gd._ncreproLight = remember(gd);
    const wanted = isDark() ? "dark" : "light";
    if (gd._ncreproLook === wanted) return;
    gd._ncreproLook = wanted;
    window.Plotly.relayout(gd, wanted === "dark" ? darkLook(gd._ncreproLight) : gd._ncreproLight);
  }

  function restyleAll() {
    document.querySelectorAll(".plotly-graph-div").forEach(restyle);
  }

  new MutationObserver(restyleAll).observe(document.documentElement, {
    attributes: true,
    attributeFilter: ["data-theme"],
  });
  window.addEventListener("load", () => {
    restyleAll();
    setTimeout(restyleAll, 300);
  });
})();
