// Passkeys for the auth app's pages: registration (form[data-passkey-register]), another
// passkey for a signed-in user ([data-passkey-add]) and sign-in (a button
// [data-passkey-login], and autofill where the browser offers it).
// No framework and no build step: the WebAuthn calls, base64url both ways, and JSON
// posts that carry the page's CSRF token. The texts it shows come from the page (the
// status box's data attributes, in the page's language) or from the server's errors.
(function () {
  "use strict";

  function decode(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  }

  function encode(buffer) {
    const bytes = new Uint8Array(buffer);
    let bin = "";
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function csrfToken() {
    const marked = document.querySelector("[data-csrf-token]");
    return marked ? marked.getAttribute("data-csrf-token") : "";
  }

  // A text of the status box's data attributes (see auth/_status.html).
  function text(name) {
    const box = document.querySelector("[data-passkey-status]");
    return (box && box.getAttribute("data-" + name)) || name;
  }

  async function post(url, body) {
    const res = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRF-Token": csrfToken(),
      },
      body: JSON.stringify(body),
    });
    const data = await res.json().catch(() => ({}));
    // A refusal with somewhere to go (e.g. an address still to verify): go there.
    if (!res.ok && data.redirect) {
      window.location.assign(data.redirect);
      return new Promise(() => {});
    }
    if (!res.ok) throw new Error(data.error || text("failed"));
    return data;
  }

  function creationOptions(options) {
    const pk = options.publicKey;
    pk.challenge = decode(pk.challenge);
    pk.user.id = decode(pk.user.id);
    (pk.excludeCredentials || []).forEach((c) => (c.id = decode(c.id)));
    return pk;
  }

  function requestOptions(options) {
    const pk = options.publicKey;
    pk.challenge = decode(pk.challenge);
    (pk.allowCredentials || []).forEach((c) => (c.id = decode(c.id)));
    return pk;
  }

  function registrationJSON(cred) {
    const r = cred.response;
    return {
      id: cred.id,
      rawId: encode(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: encode(r.attestationObject),
        clientDataJSON: encode(r.clientDataJSON),
        transports: r.getTransports ? r.getTransports() : [],
      },
      extensions: cred.getClientExtensionResults(),
    };
  }

  function assertionJSON(cred) {
    const r = cred.response;
    return {
      id: cred.id,
      rawId: encode(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: encode(r.authenticatorData),
        clientDataJSON: encode(r.clientDataJSON),
        signature: encode(r.signature),
        userHandle: r.userHandle ? encode(r.userHandle) : null,
      },
      extensions: cred.getClientExtensionResults(),
    };
  }

  function report(error) {
    const box = document.querySelector("[data-passkey-status]");
    if (!box || error.name === "AbortError") return;
    box.textContent = error.name === "NotAllowedError" ? text("cancelled") : error.message;
    box.hidden = false;
  }

  if (!window.PublicKeyCredential) {
    report(new Error(text("unsupported")));
    return;
  }

  // Registration and adding a passkey: PREFIX/begin with `body`, the browser makes the
  // passkey, PREFIX/finish checks it and says where to go.
  async function createPasskey(prefix, body) {
    try {
      const options = await post(prefix + "/begin", body);
      const cred = await navigator.credentials.create({ publicKey: creationOptions(options) });
      const done = await post(prefix + "/finish", registrationJSON(cred));
      window.location.assign(done.redirect);
    } catch (error) {
      report(error);
    }
  }

  const register = document.querySelector("form[data-passkey-register]");
  if (register) {
    register.addEventListener("submit", async (event) => {
      event.preventDefault();
      const { invite, email } = register.elements;
      createPasskey("/auth/register", {
        username: register.elements.username.value,
        display_name: register.elements.display_name.value,
        invite: invite ? invite.value : null,
        email: email ? email.value : null,
      });
    });
  }

  const add = document.querySelector("[data-passkey-add]");
  if (add) add.addEventListener("click", () => createPasskey("/auth/credentials", {}));

  const login = document.querySelector("[data-passkey-login]");
  if (login) {
    let autofill = null;
    const signIn = async (conditional) => {
      const options = await post("/auth/login/begin", {});
      const request = { publicKey: requestOptions(options) };
      if (conditional) {
        autofill = new AbortController();
        request.mediation = "conditional";
        request.signal = autofill.signal;
      }
      const cred = await navigator.credentials.get(request);
      const next = login.getAttribute("data-next");
      const done = await post("/auth/login/finish", { credential: assertionJSON(cred), next });
      window.location.assign(done.redirect);
    };
    login.addEventListener("click", () => {
      if (autofill) autofill.abort();
      signIn(false).catch(report);
    });
    // Autofill: the browser offers the site's passkeys in the username field.
    if (PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then((available) => {
        if (available) signIn(true).catch(report);
      });
    }
  }
})();
