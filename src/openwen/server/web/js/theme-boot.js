// Runs before the page paints: apply the theme chosen last time (else the system's).
(function () {
  try {
    var theme = localStorage.getItem("openwen.theme");
    if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  } catch (e) { /* storage blocked: follow the system */ }
})();
