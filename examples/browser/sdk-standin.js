// A stand-in for Astrada's Card Enrollment SDK, to exercise an integration
// without Astrada. It keeps the real SDK's contract with getAccessToken:
// called when the form launches and again before the token expires, it must
// resolve within 5 seconds, and failures reach onError. It renders no real
// form and sends the token nowhere.
(function () {
  "use strict";

  const TIMEOUT_MS = 5000;
  // Ask again this long before the token's `exp`.
  const REFRESH_MARGIN_MS = 30000;

  function withTimeout(promise) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error("getAccessToken did not resolve within 5 s")),
        TIMEOUT_MS,
      );
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  // The SDK reads the token's expiry; it does not verify it (Astrada does).
  function expiresAt(token) {
    try {
      const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(payload)).exp * 1000;
    } catch (_) {
      return null;
    }
  }

  window.CardEnrollmentSdk = {
    openForm(options) {
      const root = document.getElementById("card-enrollment") || document.body;
      const render = (state, text) => {
        root.dataset.state = state;
        root.textContent = text;
      };

      const load = async () => {
        render("loading", "Loading the card enrollment form…");
        try {
          const token = await withTimeout(Promise.resolve().then(options.getAccessToken));
          if (typeof token !== "string" || token.split(".").length !== 3) {
            throw new Error("getAccessToken did not return a token");
          }
          render("ready", `Card enrollment form for ${options.companyName} is ready.`);
          const exp = expiresAt(token);
          if (exp) {
            setTimeout(load, Math.max(1000, exp - Date.now() - REFRESH_MARGIN_MS));
          }
        } catch (error) {
          render("error", `Card enrollment is unavailable: ${error}`);
          if (options.onError) options.onError(error);
        }
      };

      load();
    },
  };
})();
