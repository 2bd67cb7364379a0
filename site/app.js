// The landing page's behaviour. Everything shown comes from config.json and the registration API and is
// set with textContent: nothing here builds HTML from data. No inline script or style (see the CSP).
"use strict";

const FIELDS = ["companyName", "contactPerson", "contactEmail", "contactPhone"];
const STATES = ["loading", "no-registration", "form", "registered", "error"];
const STATUS_TEXT = {
  pending: "Waiting for AWS Marketplace to confirm your subscription.",
  active: "Your subscription is active.",
  "cancel-pending": "Your subscription is ending.",
  cancelled: "Your subscription has ended.",
  failed: "AWS Marketplace could not complete the subscription; please contact support.",
};
const PRICING_TEXT = {
  subscription: "You pay as you go, per hour of use, on your AWS bill:",
  contract: "You pay for a contract through AWS Marketplace, covering:",
  "contract-with-consumption": "You pay for a contract, and for use beyond it, on your AWS bill:",
};

const $ = (id) => document.getElementById(id);
let config = { api: { registration: "/api/registration", register: "/api/register" } };

function show(state, announcement) {
  for (const name of STATES) $(`state-${name}`).hidden = name !== state;
  $("status").textContent = announcement || "";
}

function contrastText(hex) {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255)
    .map((c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  const luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  // White or black, as brand.css has it (stacks/page_config.py): one of them has 4.58:1 on any colour.
  return (1.05) / (luminance + 0.05) >= (luminance + 0.05) / 0.05 ? "#ffffff" : "#000000";
}

function applyConfig(loaded) {
  config = { ...config, ...loaded, api: { ...config.api, ...(loaded.api || {}) } };
  const listing = loaded.listing || {};
  if (listing.name) {
    $("product-name").textContent = listing.name;
    document.title = `Set up your account – ${listing.name}`;
  }
  $("product-description").textContent = listing.description || "";
  const branding = loaded.branding || {};
  if (/^#[0-9a-fA-F]{6}$/.test(branding.accentColor || "")) {
    document.documentElement.style.setProperty("--accent", branding.accentColor);
    document.documentElement.style.setProperty("--on-accent", contrastText(branding.accentColor));
  }
  if (typeof branding.logoUrl === "string" && branding.logoUrl.startsWith("https://")) {
    $("logo").src = branding.logoUrl;
    $("logo").alt = listing.name || "Logo";
    $("logo").hidden = false;
  }
  if (branding.supportEmail) {
    $("support-link").textContent = branding.supportEmail;
    $("support-link").href = `mailto:${encodeURIComponent(branding.supportEmail).replace("%40", "@")}`;
    $("support").hidden = false;
  }
  const dimensions = Array.isArray(loaded.dimensions) ? loaded.dimensions : [];
  if (dimensions.length) {
    $("pricing-model").textContent = PRICING_TEXT[loaded.pricingModel] || PRICING_TEXT.subscription;
    const list = $("dimensions");
    list.replaceChildren();
    for (const dimension of dimensions) {
      const item = document.createElement("li");
      item.textContent = `${dimension.description} (${dimension.unit || "Units"})`;
      list.append(item);
    }
    $("pricing").hidden = false;
  }
}

function showRegistered(subscriber, justNow) {
  $("registered-title").textContent = justNow ? "You are registered" : "You are already registered";
  $("registered-company").textContent = subscriber.companyName;
  $("registered-person").textContent = subscriber.contactPerson;
  $("registered-email").textContent = subscriber.contactEmail;
  const date = new Date(subscriber.registrationDate);
  $("registered-date").textContent = isNaN(date) ? subscriber.registrationDate : date.toLocaleString();
  $("subscription-status").textContent = STATUS_TEXT[subscriber.status] || "";
  show("registered", justNow ? "Registration complete." : "You are already registered.");
}

function showError(message) {
  $("error-message").textContent = message;
  show("error", message);
}

async function loadState() {
  show("loading");
  let response;
  try {
    response = await fetch(config.api.registration, { credentials: "same-origin", cache: "no-store" });
  } catch {
    showError("We could not reach the service; check your connection and try again.");
    return;
  }
  if (response.status === 401) {
    show("no-registration");
    return;
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    showError(response.status >= 500 ? "The service is busy; please try again." : body.message || "Please try again.");
    return;
  }
  if (body.state === "registered") {
    showRegistered(body.subscriber, false);
  } else {
    $("free-trial").hidden = body.offerType !== "free-trial";
    show("form");
  }
}

function clearErrors() {
  $("form-alert").hidden = true;
  for (const field of FIELDS) {
    $(field).removeAttribute("aria-invalid");
    $(`${field}-error`).hidden = true;
  }
}

function showFieldErrors(fields, message) {
  let first = null;
  for (const field of FIELDS) {
    if (fields[field]) {
      $(field).setAttribute("aria-invalid", "true");
      $(`${field}-error`).textContent = fields[field];
      $(`${field}-error`).hidden = false;
      first = first || field;
    }
  }
  $("form-alert").textContent = message || "Please correct the fields marked below.";
  $("form-alert").hidden = false;
  if (first) $(first).focus();
}

function setBusy(busy) {
  const button = $("submit");
  button.disabled = busy;
  button.textContent = busy ? "Registering…" : "Register";
  $("registration-form").setAttribute("aria-busy", busy ? "true" : "false");
}

async function submit(event) {
  event.preventDefault();
  clearErrors();
  const payload = Object.fromEntries(FIELDS.map((field) => [field, $(field).value]));
  setBusy(true);
  let response;
  try {
    response = await fetch(config.api.register, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload),
    });
  } catch {
    setBusy(false);
    showFieldErrors({}, "The service is busy; please try again. What you typed is kept.");
    return;
  }
  const body = await response.json().catch(() => ({}));
  setBusy(false);
  if (response.status === 201 || response.status === 200) {
    showRegistered(body.subscriber, response.status === 201);
  } else if (response.status === 422) {
    showFieldErrors(body.fields || {}, "Please correct the fields marked below.");
  } else if (response.status === 401) {
    showFieldErrors({}, "Your registration link has expired. Return to AWS Marketplace and open the product again.");
  } else if (response.status >= 500) {
    showFieldErrors({}, "The service is busy; please try again. What you typed is kept.");
  } else {
    showFieldErrors({}, body.message || "We could not register you; please try again.");
  }
}

async function start() {
  $("registration-form").addEventListener("submit", submit);
  $("retry").addEventListener("click", loadState);
  try {
    const response = await fetch("config.json", { cache: "no-cache" });
    if (response.ok) applyConfig(await response.json());
  } catch {
    // The page still works with its defaults; the registration state below tells the buyer what to do.
  }
  await loadState();
}

document.addEventListener("DOMContentLoaded", start);
