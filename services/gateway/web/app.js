// The search page: a photo (dropped, pasted or picked) or a stored id ("more like this") sent
// to the gateway's HTTP/JSON API, the hits shown as a grid of cards. No dependencies.
// Metadata is shown with textContent only: it is whatever the indexer stored.
"use strict";

(() => {
  const TOKEN_KEY = "imsearch.token";
  const MIN_BOX = 0.02; // a drag smaller than this (as a fraction of a side) is a click, not a box

  const $ = (id) => document.getElementById(id);
  const el = {
    form: $("search-form"),
    dropZone: $("drop-zone"),
    dropTitle: $("drop-title"),
    file: $("file"),
    figure: $("preview-figure"),
    frame: $("preview-frame"),
    preview: $("preview"),
    broken: $("preview-broken"),
    overlay: $("box-overlay"),
    box: $("box"),
    boxHint: $("box-hint"),
    clearBox: $("clear-box"),
    collection: $("collection"),
    reload: $("reload-collections"),
    index: $("index"),
    topK: $("top-k"),
    filterRows: $("filter-rows"),
    addFilter: $("add-filter"),
    filterTemplate: $("filter-row"),
    tokenDetails: $("token-details"),
    token: $("token"),
    error: $("error"),
    section: $("results-section"),
    title: $("query-title"),
    back: $("back-to-photo"),
    status: $("status"),
    results: $("results"),
  };

  const state = {
    image: null, // {name, base64, objectUrl}
    box: null, // {x, y, width, height} as fractions of the image
    query: null, // {kind: "image"} | {kind: "id", id}
    controller: null, // AbortController of the search in flight
    sequence: 0, // the latest search; older answers are dropped
    filterCount: 0,
  };

  // -- helpers --------------------------------------------------------------------------

  const clamp01 = (v) => Math.min(1, Math.max(0, v));
  const round4 = (v) => Math.round(v * 10000) / 10000;

  function node(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k === "dataset") Object.assign(e.dataset, v);
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c != null) e.append(c);
    return e;
  }

  function showError(message) {
    el.error.textContent = message;
  }

  function clearError() {
    el.error.textContent = "";
  }

  function token() {
    return (el.token.value || "").trim();
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body, signal) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token()) headers.Authorization = `Bearer ${token()}`;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, "The server could not be reached. Check your connection and try again.");
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      let message = (data && typeof data.message === "string" && data.message) || response.statusText;
      if (response.status === 401) message = `${message} — enter an access token below.`;
      else if (response.status === 403) message = `${message} — this token may not do that.`;
      else if (response.status === 429) message = `${message} — the server is busy; try again shortly.`;
      throw new ApiError(response.status, message || `HTTP ${response.status}`);
    }
    return data || {};
  }

  function askForToken() {
    el.tokenDetails.open = true;
    el.token.focus();
  }

  // -- collections ------------------------------------------------------------------------

  async function loadCollections() {
    const previous = el.collection.value;
    el.collection.disabled = true;
    try {
      const data = await api("GET", "/v1/collections");
      const collections = Array.isArray(data.collections) ? data.collections : [];
      el.collection.replaceChildren();
      if (collections.length === 0) {
        el.collection.append(node("option", { value: "", text: "Default collection (none listed)" }));
      }
      for (const c of collections) {
        const points = Number(c.points || 0);
        const label = `${c.collection} — ${c.model || "no model"}, ${points.toLocaleString()} image${
          points === 1 ? "" : "s"
        }`;
        el.collection.append(node("option", { value: c.collection, text: label }));
      }
      if (previous && collections.some((c) => c.collection === previous)) el.collection.value = previous;
    } catch (err) {
      el.collection.replaceChildren(node("option", { value: "", text: "Default collection" }));
      showError(`Could not list the collections: ${err.message}`);
      if (err.status === 401) askForToken();
    } finally {
      el.collection.disabled = false;
    }
  }

  // -- the query image --------------------------------------------------------------------

  function readBase64(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => {
        const url = String(reader.result);
        resolve(url.slice(url.indexOf(",") + 1));
      };
      reader.onerror = () => reject(reader.error || new Error("the file could not be read"));
      reader.readAsDataURL(file);
    });
  }

  async function useFile(file) {
    if (!file) return;
    clearError();
    if (file.type && !file.type.startsWith("image/")) {
      showError(`“${file.name}” is not an image (${file.type}). Choose a JPEG, PNG, WebP, GIF or BMP file.`);
      return;
    }
    let base64;
    try {
      base64 = await readBase64(file);
    } catch (err) {
      showError(`Could not read “${file.name}”: ${err.message}`);
      return;
    }
    if (state.image) URL.revokeObjectURL(state.image.objectUrl);
    state.image = { name: file.name || "pasted image", base64, objectUrl: URL.createObjectURL(file) };
    setBox(null);
    el.broken.hidden = true;
    el.preview.hidden = false;
    el.preview.src = state.image.objectUrl;
    el.preview.alt = `Your photo: ${state.image.name}`;
    el.figure.hidden = false;
    el.dropZone.classList.add("has-image");
    el.dropTitle.textContent = "Choose another photo";
    search({ kind: "image" });
  }

  el.preview.addEventListener("error", () => {
    if (!state.image) return;
    el.preview.hidden = true;
    el.broken.hidden = false;
  });

  el.file.addEventListener("change", () => {
    const file = el.file.files && el.file.files[0];
    useFile(file);
    el.file.value = ""; // choosing the same file again searches again
  });

  // Drops anywhere on the page count (a drop outside the zone would otherwise open the file).
  let dragDepth = 0;
  const hasFiles = (event) => Array.from(event.dataTransfer?.types || []).includes("Files");
  document.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    dragDepth += 1;
    el.dropZone.classList.add("dragging");
  });
  document.addEventListener("dragleave", (event) => {
    if (!hasFiles(event)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) el.dropZone.classList.remove("dragging");
  });
  document.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    dragDepth = 0;
    el.dropZone.classList.remove("dragging");
    const files = Array.from(event.dataTransfer.files || []);
    useFile(files.find((f) => f.type.startsWith("image/")) || files[0]);
  });

  document.addEventListener("paste", (event) => {
    const items = Array.from(event.clipboardData?.items || []);
    const item = items.find((i) => i.kind === "file" && i.type.startsWith("image/"));
    if (!item) return; // text pastes into the inputs as usual
    event.preventDefault();
    useFile(item.getAsFile());
  });

  // -- the box ----------------------------------------------------------------------------

  function setBox(box) {
    state.box = box;
    if (!box) {
      el.box.hidden = true;
      el.clearBox.hidden = true;
      el.boxHint.textContent = "Drag on the photo to search only part of it.";
      return;
    }
    drawBox(box);
    el.clearBox.hidden = false;
    const pct = (v) => `${Math.round(v * 100)}%`;
    el.boxHint.textContent = `Searching the boxed part: ${pct(box.width)} × ${pct(box.height)} of the photo.`;
  }

  function drawBox(box) {
    el.box.hidden = false;
    el.box.style.left = `${box.x * 100}%`;
    el.box.style.top = `${box.y * 100}%`;
    el.box.style.width = `${box.width * 100}%`;
    el.box.style.height = `${box.height * 100}%`;
  }

  // Fractions of the shown image, which keeps its aspect ratio: so of its natural size too.
  function pointFraction(event) {
    const rect = el.preview.getBoundingClientRect();
    return {
      x: clamp01((event.clientX - rect.left) / rect.width),
      y: clamp01((event.clientY - rect.top) / rect.height),
    };
  }

  // Corners floored to 4 decimals, so x + width and y + height stay within 1.
  function boxBetween(a, b) {
    const floor4 = (v) => Math.floor(v * 10000) / 10000;
    const [left, right] = [floor4(Math.min(a.x, b.x)), floor4(Math.max(a.x, b.x))];
    const [top, bottom] = [floor4(Math.min(a.y, b.y)), floor4(Math.max(a.y, b.y))];
    return { x: left, y: top, width: round4(right - left), height: round4(bottom - top) };
  }

  let dragStart = null;
  el.overlay.addEventListener("pointerdown", (event) => {
    if (!state.image || el.preview.hidden || event.button !== 0) return;
    event.preventDefault();
    el.overlay.setPointerCapture(event.pointerId);
    dragStart = pointFraction(event);
    drawBox({ ...dragStart, width: 0, height: 0 });
  });
  el.overlay.addEventListener("pointermove", (event) => {
    if (!dragStart) return;
    drawBox(boxBetween(dragStart, pointFraction(event)));
  });
  const endDrag = (event, cancelled) => {
    if (!dragStart) return;
    const box = boxBetween(dragStart, pointFraction(event));
    dragStart = null;
    if (cancelled || box.width < MIN_BOX || box.height < MIN_BOX) {
      if (state.box) drawBox(state.box);
      else el.box.hidden = true;
      return;
    }
    setBox(box);
    search({ kind: "image" });
  };
  el.overlay.addEventListener("pointerup", (event) => endDrag(event, false));
  el.overlay.addEventListener("pointercancel", (event) => endDrag(event, true));

  el.clearBox.addEventListener("click", () => {
    setBox(null);
    search({ kind: "image" });
  });

  // -- filters ----------------------------------------------------------------------------

  function addFilterRow(key = "", value = "") {
    state.filterCount += 1;
    const n = state.filterCount;
    const row = el.filterTemplate.content.firstElementChild.cloneNode(true);
    for (const input of row.querySelectorAll("input")) {
      input.id = `filter-${input.dataset.name}-${n}`;
      input.value = input.dataset.name === "key" ? key : value;
    }
    for (const label of row.querySelectorAll("label")) label.htmlFor = `filter-${label.dataset.for}-${n}`;
    const remove = row.querySelector(".remove-filter");
    remove.addEventListener("click", () => {
      const next = row.nextElementSibling || row.previousElementSibling;
      row.remove();
      if (!el.filterRows.children.length) addFilterRow();
      (next || el.filterRows.firstElementChild).querySelector("input").focus();
    });
    el.filterRows.append(row);
    return row;
  }

  function filterValue(text) {
    return /^-?\d{1,15}$/.test(text) ? Number(text) : text;
  }

  // where.must from the rows; throws a message for a half-filled row.
  function readFilters() {
    const must = [];
    for (const row of el.filterRows.children) {
      const key = row.querySelector(".filter-key").value.trim();
      const value = row.querySelector(".filter-value").value.trim();
      if (!key && !value) continue;
      if (!key) throw new Error(`The filter “= ${value}” needs a key.`);
      if (!value) throw new Error(`The filter “${key}” needs a value.`);
      must.push({ key, equals: filterValue(value) });
    }
    return must;
  }

  el.addFilter.addEventListener("click", () => addFilterRow().querySelector("input").focus());

  // -- search -----------------------------------------------------------------------------

  function topK() {
    const n = Math.round(Number(el.topK.value));
    const k = Number.isFinite(n) ? Math.min(100, Math.max(1, n)) : 12;
    el.topK.value = String(k);
    return k;
  }

  function requestBody(query) {
    const body = { topK: topK(), index: el.index.value, withThumbnails: true };
    const must = readFilters();
    if (must.length) body.where = { must };
    if (query.kind === "id") {
      body.positiveIds = [query.id];
    } else {
      body.image = state.image.base64;
      if (state.box) body.box = { ...state.box };
    }
    return body;
  }

  function searchPath() {
    const name = el.collection.value;
    return name ? `/v1/collections/${encodeURIComponent(name)}:search` : "/v1/search";
  }

  function setTitle(query) {
    el.title.textContent = query.kind === "id" ? `More like ${query.id}` : "Results for your photo";
    el.back.hidden = !(query.kind === "id" && state.image);
  }

  async function search(query) {
    if (!query) {
      showError("Choose a photo first: drop one, paste one, or pick a file.");
      el.file.focus();
      return;
    }
    if (query.kind === "image" && !state.image) return;
    clearError();
    let body;
    try {
      body = requestBody(query);
    } catch (err) {
      showError(err.message);
      return;
    }
    state.controller?.abort();
    const controller = new AbortController();
    state.controller = controller;
    const sequence = ++state.sequence;
    state.query = query;
    el.section.setAttribute("aria-busy", "true");
    el.form.classList.add("busy");
    el.status.textContent = "Searching…";
    const started = performance.now();
    try {
      const data = await api("POST", searchPath(), body, controller.signal);
      if (sequence !== state.sequence) return;
      const elapsed = performance.now() - started;
      setTitle(query);
      render(Array.isArray(data.results) ? data.results : []);
      showStatus(data, elapsed);
    } catch (err) {
      if (err.name === "AbortError" || sequence !== state.sequence) return;
      showError(err.message);
      el.status.textContent = "The search failed.";
      if (err.status === 401) askForToken();
    } finally {
      if (sequence === state.sequence) {
        el.section.setAttribute("aria-busy", "false");
        el.form.classList.remove("busy");
        state.controller = null;
      }
    }
  }

  function indexName(kind) {
    return String(kind || "").replace(/^INDEX_KIND_/, "").toLowerCase() || "default";
  }

  function showStatus(data, elapsed) {
    const n = Array.isArray(data.results) ? data.results.length : 0;
    const parts = [
      `${n} result${n === 1 ? "" : "s"}`,
      `model ${data.model || "?"}`,
      `index ${indexName(data.index)}${data.reranked ? " (reranked)" : ""}`,
      `${Math.round(elapsed)} ms`,
    ];
    if (data.collection) parts.splice(1, 0, `collection ${data.collection}`);
    el.status.textContent = parts.join(" · ");
  }

  // -- results ----------------------------------------------------------------------------

  function isHttpUrl(value) {
    if (typeof value !== "string") return false;
    try {
      const url = new URL(value);
      return url.protocol === "http:" || url.protocol === "https:";
    } catch {
      return false;
    }
  }

  function placeholder(id) {
    const short = id.split("/").pop() || id;
    return node(
      "div",
      { class: "thumb placeholder", role: "img", "aria-label": `No picture for ${id}` },
      node("span", { text: short, "aria-hidden": "true" }),
    );
  }

  function picture(hit, alt) {
    let src = null;
    if (typeof hit.thumbnail === "string" && hit.thumbnail) src = `data:image/jpeg;base64,${hit.thumbnail}`;
    else if (isHttpUrl(hit.metadata?.url)) src = hit.metadata.url;
    if (!src) return placeholder(hit.id);
    const img = node("img", { class: "thumb", alt, decoding: "async", referrerpolicy: "no-referrer" });
    if (!src.startsWith("data:")) img.loading = "lazy"; // a thumbnail is here already
    img.addEventListener("error", () => img.replaceWith(placeholder(hit.id)), { once: true });
    img.src = src;
    return img;
  }

  // The text with a line-break opportunity after each / _ . or - (ids are often paths).
  function breakable(parent, text) {
    for (const part of text.split(/(?<=[/_.-])/)) {
      if (parent.childNodes.length) parent.append(document.createElement("wbr"));
      parent.append(part);
    }
    return parent;
  }

  function metadataText(value) {
    if (value === null) return "null";
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function card(hit, rank) {
    const id = String(hit.id ?? "");
    const metadata = hit.metadata && typeof hit.metadata === "object" ? hit.metadata : {};
    const label = typeof metadata.label === "string" ? metadata.label : "";
    const score = Number(hit.score || 0);
    const li = node("li", { class: "card", dataset: { testid: "result", id, label } });
    li.append(picture(hit, label ? `Result ${rank}: ${label}` : `Result ${rank}: ${id}`));
    const body = node("div", { class: "card-body" });
    body.append(
      node(
        "p",
        { class: "score-line" },
        node("span", { class: "rank", text: `#${rank}` }),
        node("span", { class: "score", text: score.toFixed(3), title: "cosine similarity" }),
      ),
      breakable(node("p", { class: "hit-id", title: id }), id),
    );
    const keys = Object.keys(metadata);
    if (keys.length) {
      const dl = node("dl", { class: "meta" });
      for (const key of keys) {
        const text = metadataText(metadata[key]);
        dl.append(node("dt", { text: key }), node("dd", { text, title: text }));
      }
      body.append(dl);
    }
    const more = node("button", {
      type: "button",
      class: "more",
      text: "More like this",
      "aria-label": `More like this: ${id}`,
    });
    more.addEventListener("click", () => search({ kind: "id", id }));
    body.append(more);
    li.append(body);
    return li;
  }

  function render(results) {
    el.results.replaceChildren(...results.map((hit, i) => card(hit, i + 1)));
    if (!results.length) {
      el.results.append(node("li", { class: "empty", text: "Nothing found. Try fewer filters or another collection." }));
    }
  }

  // -- wiring -----------------------------------------------------------------------------

  el.form.addEventListener("submit", (event) => {
    event.preventDefault();
    search(state.query || (state.image ? { kind: "image" } : null));
  });

  el.back.addEventListener("click", () => search({ kind: "image" }));

  el.reload.addEventListener("click", () => {
    clearError();
    loadCollections();
  });

  el.token.value = sessionStorage.getItem(TOKEN_KEY) || "";
  el.token.addEventListener("change", () => {
    if (token()) sessionStorage.setItem(TOKEN_KEY, token());
    else sessionStorage.removeItem(TOKEN_KEY);
    clearError();
    loadCollections();
  });

  addFilterRow();
  loadCollections();
})();
