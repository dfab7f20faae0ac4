// The hosted pages' passkey script (SPEC §4), beside @simplewebauthn/browser's bundle
// (static/simplewebauthn-browser.js, the global SimpleWebAuthnBrowser). Every passkey form
// carries data-passkey="register|second_factor|sign_in" and data-options (where to fetch the
// ceremony's options, its challenge kept by Gatehouse for this interaction); the forms stay
// hidden without this script or without WebAuthn, and the rest of the page works without them.
// The browser's answer goes into the form's "response" field, and the form is posted as usual:
// Gatehouse renders what comes next.
'use strict';
(function () {
  var webauthn = window.SimpleWebAuthnBrowser;
  if (!webauthn || !webauthn.browserSupportsWebAuthn()) return;

  var MESSAGES = {
    NotAllowedError: 'The passkey was not used (cancelled, timed out, or not found). Try again.',
    InvalidStateError: 'This device already has a passkey for your account.',
    SecurityError: 'Passkeys are not available on this address.',
  };

  function showError(form, error) {
    var box = form.querySelector('[data-passkey-error]');
    if (!box) return;
    box.textContent = (error && MESSAGES[error.name]) || 'The passkey could not be used. Try again.';
    box.hidden = false;
  }

  /** The ceremony's options, fetched with the form's CSRF token. */
  function fetchOptions(form) {
    var body = new URLSearchParams({ csrf: form.elements.csrf.value, ceremony: form.getAttribute('data-passkey') });
    return fetch(form.getAttribute('data-options'), { method: 'POST', body: body, credentials: 'same-origin' }).then(function (response) {
      if (!response.ok) throw new Error('options refused: ' + response.status);
      return response.json();
    });
  }

  function ceremony(form, optionsJSON, autofill) {
    var kind = form.getAttribute('data-passkey');
    return kind === 'register'
      ? webauthn.startRegistration({ optionsJSON: optionsJSON })
      : webauthn.startAuthentication({ optionsJSON: optionsJSON, useBrowserAutofill: autofill === true });
  }

  function post(form, answer) {
    form.elements.response.value = JSON.stringify(answer);
    form.setAttribute('data-passkey-state', 'posting');
    HTMLFormElement.prototype.submit.call(form);
  }

  function run(form, autofill) {
    form.setAttribute('data-passkey-state', 'asking');
    return fetchOptions(form)
      .then(function (options) { return ceremony(form, options, autofill); })
      .then(function (answer) { post(form, answer); })
      .catch(function (error) {
        form.setAttribute('data-passkey-state', 'failed');
        // A conditional request is cancelled when the button starts another: nothing to say.
        if (autofill === true && error && error.name === 'AbortError') return;
        if (autofill !== true) showError(form, error);
      });
  }

  document.querySelectorAll('form[data-passkey]').forEach(function (form) {
    var section = form.closest('[data-passkey-section]');
    if (section) section.hidden = false;
    form.hidden = false;
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var box = form.querySelector('[data-passkey-error]');
      if (box) box.hidden = true;
      run(form, false);
    });
    // Conditional UI: the browser offers passkeys in the username field (autocomplete="username webauthn").
    if (form.getAttribute('data-passkey') === 'sign_in' && document.querySelector('input[autocomplete~="webauthn"]')) {
      webauthn.browserSupportsWebAuthnAutofill().then(function (supported) {
        if (supported) run(form, true);
      });
    }
  });
})();
