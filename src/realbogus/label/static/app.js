// realbogus label: the pages' behaviour, through the JSON API only (docs/labelling.md).
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

async function api(method, path, body) {
  const options = { method, headers: {}, credentials: "same-origin" };
  if (method !== "GET") options.headers["X-CSRF-Token"] = csrf();
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 401) { window.location.assign("/login"); throw new Error("signed out"); }
  return response;
}

function setupLogout() {
  const button = document.getElementById("logout");
  if (!button) return;
  button.addEventListener("click", async () => {
    await api("POST", "/api/logout");
    window.location.assign("/login");
  });
}

function setupLogin() {
  const form = document.getElementById("login-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const response = await fetch("/api/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({
        username: document.getElementById("username").value,
        password: document.getElementById("password").value,
      }),
    });
    if (response.ok) { window.location.assign("/"); return; }
    const detail = (await response.json().catch(() => ({}))).detail || response.statusText;
    document.getElementById("login-error").textContent = detail;
  });
}

function setupLabel() {
  let current = null;
  let busy = false;
  let scale = 4;
  let count = 0;
  const img = document.getElementById("triplet");
  const feedback = document.getElementById("feedback");

  function show(subject) {
    current = subject;
    document.getElementById("subject-id").textContent = subject.subject_id;
    img.src = `${subject.images.triplet}?scale=${scale}`;
    const table = document.getElementById("metadata");
    table.replaceChildren();
    for (const [key, value] of Object.entries(subject.metadata)) {
      const row = table.insertRow();
      row.insertCell().textContent = key;
      row.insertCell().textContent = value === null ? "" : String(value);
    }
  }

  async function next() {
    const response = await api("GET", "/api/subjects/next");
    if (response.status === 204) {
      current = null;
      document.getElementById("subject").hidden = true;
      document.getElementById("empty").hidden = false;
      document.body.dataset.state = "empty";
      return;
    }
    show(await response.json());
    document.body.dataset.state = "ready";
  }

  async function answer(value) {
    if (!current || busy) return;
    busy = true;
    document.body.dataset.state = "busy";
    try {
      const response = await api("POST", "/api/classifications", {
        subject_id: current.subject_id, answer: value,
      });
      if (response.status === 201) {
        const result = await response.json();
        count += 1;
        document.getElementById("count").textContent = count;
        feedback.textContent = result.feedback
          ? (result.feedback.correct ? "Correct: this is a known " : "Not quite: this is a known ")
            + result.feedback.gold + " detection."
          : `Saved: ${value}.`;
      } else {
        feedback.textContent = (await response.json()).detail;
      }
      await next();
    } finally { busy = false; }
  }

  async function undo() {
    if (busy) return;
    busy = true;
    document.body.dataset.state = "busy";
    try {
      const response = await api("POST", "/api/undo");
      if (response.ok) {
        const removed = (await response.json()).undone;
        count = Math.max(0, count - 1);
        document.getElementById("count").textContent = count;
        feedback.textContent = `Undone: subject ${removed.subject_id} (${removed.answer}).`;
        document.getElementById("subject").hidden = false;
        document.getElementById("empty").hidden = true;
        const subject = await api("GET", `/api/subjects/${removed.subject_id}`);
        if (subject.status === 200) show(await subject.json());
      } else {
        feedback.textContent = "Nothing to undo.";
      }
      document.body.dataset.state = "ready";
    } finally { busy = false; }
  }

  function zoom(step) {
    scale = Math.min(12, Math.max(1, scale + step));
    if (current) img.src = `${current.images.triplet}?scale=${scale}`;
  }

  document.getElementById("answer-real").addEventListener("click", () => answer("real"));
  document.getElementById("answer-bogus").addEventListener("click", () => answer("bogus"));
  document.getElementById("undo").addEventListener("click", undo);
  document.getElementById("zoom-in").addEventListener("click", () => zoom(1));
  document.getElementById("zoom-out").addEventListener("click", () => zoom(-1));
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) {
      if ((event.ctrlKey || event.metaKey) && event.key === "z") { event.preventDefault(); undo(); }
      return;
    }
    const keys = {
      r: () => answer("real"), R: () => answer("real"), ArrowLeft: () => answer("real"),
      b: () => answer("bogus"), B: () => answer("bogus"), ArrowRight: () => answer("bogus"),
      u: undo, U: undo, Backspace: undo, "+": () => zoom(1), "=": () => zoom(1), "-": () => zoom(-1),
    };
    if (keys[event.key]) { event.preventDefault(); keys[event.key](); }
  });
  next();
}

function setupAdmin() {
  document.getElementById("gold-send").addEventListener("click", async () => {
    const labels = document.getElementById("gold-text").value.split("\n")
      .map((line) => line.trim()).filter((line) => line)
      .map((line) => {
        const [id, label] = line.split(",").map((x) => x.trim());
        return { subject_id: Number(id), label: label === "" || label === undefined ? null : Number(label) };
      });
    const response = await api("POST", "/api/admin/gold", { labels });
    const result = await response.json();
    document.getElementById("gold-result").textContent =
      response.ok ? `${result.updated} subjects updated.` : JSON.stringify(result.detail);
  });
}

function setupUpload() {
  document.getElementById("alerts-send").addEventListener("click", async () => {
    const lines = [];
    for (const file of document.getElementById("alerts-file").files) {
      const response = await fetch("/api/admin/alerts", {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf(), "Content-Type": "application/avro" },
        body: file,
      });
      if (response.status === 401) { window.location.assign("/login"); return; }
      const result = await response.json();
      lines.push(response.ok
        ? `${file.name}: ${result.added} added, ${result.already} already subjects, ${result.failed} unreadable`
        : `${file.name}: refused (${response.status}): ${result.detail}`);
    }
    document.getElementById("alerts-result").textContent = lines.join("\n");
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setupLogout();
  const pageName = document.body.dataset.page;
  if (pageName === "login") setupLogin();
  if (pageName === "label") setupLabel();
  if (pageName === "admin") { setupAdmin(); setupUpload(); }
});
