"use strict";
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const storeKey = "ct2mri-report:" + data.key;
  const RATINGS = ["pass", "check", "fail"];
  const ROLES = [["ct", "CT"], ["t1", "synthetic T1"], ["trust", "trust map"]];
  const ratings = loadRatings();
  const opened = new Set();
  const slices = {};
  const sprites = {};
  let sortKey = null;
  let sortDir = 1;

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children || []) if (child) node.append(child);
    return node;
  }

  function fmt(value, digits) {
    if (value === null || value === undefined || value === "") return "";
    if (typeof value === "number") {
      if (Number.isInteger(value)) return String(value);
      return String(Number(value.toPrecision(digits || 4)));
    }
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function loadRatings() {
    const merged = {};
    for (const [name, r] of Object.entries(data.ratings || {})) {
      merged[name] = { rating: r.rating || "", note: r.note || "", t: data.ratings_time || 0 };
    }
    let stored = {};
    try { stored = JSON.parse(localStorage.getItem(storeKey) || "{}") || {}; } catch (e) { stored = {}; }
    for (const [name, r] of Object.entries(stored)) {
      if (r && (!merged[name] || (r.t || 0) > merged[name].t)) merged[name] = r;
    }
    return merged;
  }

  function storeRatings() {
    try { localStorage.setItem(storeKey, JSON.stringify(ratings)); } catch (e) { /* storage off: ratings live in the page */ }
  }

  function setRating(name, rating, note) {
    const old = ratings[name] || { rating: "", note: "" };
    ratings[name] = {
      rating: rating === undefined ? old.rating : rating,
      note: note === undefined ? old.note : note,
      t: Date.now(),
    };
    storeRatings();
    showRated();
  }

  function csvField(text) {
    const s = String(text === undefined || text === null ? "" : text);
    return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }

  function ratingsCsv() {
    const names = data.cases.map((c) => c.case);
    for (const name of Object.keys(ratings).sort()) if (!names.includes(name)) names.push(name);
    const lines = ["case,rating,note"];
    for (const name of names) {
      const r = ratings[name] || {};
      lines.push([name, r.rating || "", r.note || ""].map(csvField).join(","));
    }
    return lines.join("\r\n") + "\r\n";
  }

  function parseCsv(text) {
    const rows = [];
    let row = [], field = "", quoted = false;
    for (let i = 0; i < text.length; i++) {
      const ch = text[i];
      if (quoted) {
        if (ch === '"' && text[i + 1] === '"') { field += '"'; i++; }
        else if (ch === '"') quoted = false;
        else field += ch;
      } else if (ch === '"') quoted = true;
      else if (ch === ",") { row.push(field); field = ""; }
      else if (ch === "\n" || ch === "\r") {
        if (ch === "\r" && text[i + 1] === "\n") i++;
        row.push(field); rows.push(row); row = []; field = "";
      } else field += ch;
    }
    if (field !== "" || row.length) { row.push(field); rows.push(row); }
    return rows.filter((r) => r.some((f) => f.trim() !== ""));
  }

  function loadCsv(text) {
    const rows = parseCsv(text.replace(/^\ufeff/, ""));
    const head = (rows.shift() || []).map((h) => h.trim().toLowerCase());
    const at = { case: head.indexOf("case"), rating: head.indexOf("rating"), note: head.indexOf("note") };
    if (at.case < 0) { alert("The CSV has no 'case' column."); return; }
    let count = 0;
    for (const r of rows) {
      const name = (r[at.case] || "").trim();
      const rating = at.rating < 0 ? "" : (r[at.rating] || "").trim().toLowerCase();
      if (!name || (rating && !RATINGS.includes(rating))) continue;
      setRating(name, rating, at.note < 0 ? "" : (r[at.note] || "").trim());
      count++;
    }
    render();
    document.getElementById("rated").title = count + " ratings loaded";
  }

  function saveCsv() {
    const blob = new Blob([ratingsCsv()], { type: "text/csv" });
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: data.ratings_file || "ratings.csv" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  function showRated() {
    const rated = data.cases.filter((c) => (ratings[c.case] || {}).rating).length;
    document.getElementById("rated").textContent = "rated " + rated + " of " + data.cases.length;
  }

  function poseText(pose) {
    if (!pose) return "";
    return ["pitch", "roll", "yaw"].map((k) => (k in pose ? Number(pose[k]).toFixed(1) : "-")).join(" / ");
  }

  function trustText(trust) {
    if (!trust) return "";
    const parts = [];
    if (typeof trust.mean === "number") parts.push("mean " + fmt(trust.mean, 3));
    if (typeof trust.unsure_share === "number") parts.push("unsure " + fmt(100 * trust.unsure_share, 3) + " %");
    if (trust.verdict) parts.push(String(trust.verdict));
    for (const [k, v] of Object.entries(trust)) {
      if (!["mean", "unsure_share", "verdict", "map"].includes(k) && typeof v !== "object") parts.push(k + " " + fmt(v, 3));
    }
    return parts.join(", ");
  }

  function columns() {
    const cols = [
      { key: "case", label: "case", sort: (c) => c.case, cell: caseCell },
      { key: "state", label: "state", sort: (c) => ["failed", "warning", "pending", "done"].indexOf(c.category) + 1 || 5,
        cell: (c) => el("td", { title: c.error || null }, [el("span", { class: "state " + c.category, text: c.category }),
          c.error ? el("small", { class: "error", text: c.error }) : null]) },
      { key: "rating", label: "rating", sort: (c) => ["fail", "check", "pass"].indexOf((ratings[c.case] || {}).rating) + 1 || 4,
        cell: ratingCell },
    ];
    for (const name of data.checks) {
      cols.push({
        key: "check:" + name, label: name, note: data.thresholds[name] || "",
        sort: (c) => { const k = c.checks[name]; return k ? (typeof k.value === "number" ? k.value : String(k.value)) : null; },
        cell: (c) => checkCell(c.checks[name]),
      });
    }
    cols.push(
      { key: "pose", label: "pose", note: "pitch / roll / yaw (deg)", sort: (c) => c.pose ? Math.max(...Object.values(c.pose).map(Math.abs)) : null,
        cell: (c) => el("td", { class: "nowrap", text: poseText(c.pose) }) },
      { key: "brain", label: "brain (mL)", sort: (c) => c.brain_ml, cell: (c) => el("td", { class: "num", text: fmt(c.brain_ml, 5) }) },
      { key: "style", label: "style distance", sort: (c) => c.style_distance, cell: (c) => el("td", { class: "num", text: fmt(c.style_distance, 3) }) },
      { key: "trust", label: "trust", sort: (c) => c.trust && typeof c.trust.mean === "number" ? c.trust.mean : null,
        cell: (c) => el("td", { text: trustText(c.trust) }) },
      { key: "seconds", label: "seconds", sort: (c) => c.seconds, cell: (c) => el("td", { class: "num", text: fmt(c.seconds, 3) }) },
      { key: "problem", label: "error / notes", sort: (c) => c.error || c.notes.join(" ") || null,
        cell: (c) => el("td", { class: "problem", text: [c.error, ...c.notes].filter(Boolean).join("; ") }) },
    );
    return cols;
  }

  function caseCell(c, index) {
    const button = el("button", { type: "button", class: "case-name", "aria-expanded": opened.has(c.case) ? "true" : "false",
      title: "show the case's pictures and slices", text: c.case });
    button.addEventListener("click", () => {
      const row = button.closest("tr");
      const next = row.nextElementSibling;
      if (opened.has(c.case)) {
        opened.delete(c.case);
        if (next && next.classList.contains("detail")) next.remove();
      } else {
        opened.add(c.case);
        row.after(details(c, index, row.children.length));
      }
      button.setAttribute("aria-expanded", opened.has(c.case) ? "true" : "false");
    });
    return el("td", {}, [button, c.shard ? el("small", { class: "shard", text: "shard " + c.shard }) : null]);
  }

  function checkCell(check) {
    if (!check) return el("td", {});
    const verdict = check.verdict || "";
    const title = [check.threshold ? "threshold: " + check.threshold : "", check.message || ""].filter(Boolean).join("\n");
    return el("td", { class: "check verdict-" + verdict, title: title || null, "data-verdict": verdict },
      [document.createTextNode(fmt(check.value)), el("small", { text: verdict })]);
  }

  function ratingCell(c) {
    const current = ratings[c.case] || { rating: "", note: "" };
    const td = el("td", { class: "rating" });
    for (const r of RATINGS) {
      const b = el("button", { type: "button", "data-rating": r, "aria-pressed": current.rating === r ? "true" : "false", text: r });
      b.addEventListener("click", () => {
        setRating(c.case, (ratings[c.case] || {}).rating === r ? "" : r);
        for (const other of td.querySelectorAll("button")) {
          other.setAttribute("aria-pressed", other.dataset.rating === (ratings[c.case] || {}).rating ? "true" : "false");
        }
      });
      td.append(b, document.createTextNode(" "));
    }
    const note = el("input", { type: "text", class: "note", placeholder: "note", "aria-label": "note on " + c.case });
    note.value = current.note || "";
    note.addEventListener("input", () => setRating(c.case, undefined, note.value));
    td.append(note);
    return td;
  }

  function imageData(index, role) {
    const block = document.getElementById("img-" + index + "-" + role);
    return block ? "data:" + block.dataset.mime + ";base64," + block.textContent.trim() : null;
  }

  function sprite(index, role) {
    const id = index + "-" + role;
    if (!sprites[id]) {
      const img = new Image();
      img.src = imageData(index, role);
      sprites[id] = img.decode().then(() => img);
    }
    return sprites[id];
  }

  function draw(canvas, index, role, meta, k) {
    sprite(index, role).then((img) => {
      const ctx = canvas.getContext("2d");
      const sx = (k % meta.columns) * meta.cell_w, sy = Math.floor(k / meta.columns) * meta.cell_h;
      ctx.drawImage(img, sx, sy, meta.width, meta.height, 0, 0, meta.width, meta.height);
      canvas.dataset.slice = String(k);
    });
  }

  function viewer(c, index) {
    const roles = ROLES.filter(([role]) => c.views[role]);
    if (!roles.length) return null;
    const count = Math.min(...roles.map(([role]) => c.views[role].count));
    if (!(c.case in slices)) slices[c.case] = Math.floor(count / 2);
    const box = el("div", { class: "viewer", "data-case": c.case });
    const canvases = [];
    const figures = el("div", {});
    const shown = 260;
    for (const [role, label] of roles) {
      const meta = c.views[role];
      const canvas = el("canvas", { width: meta.width, height: meta.height, "data-role": role, "aria-label": label });
      canvas.style.width = shown + "px";
      canvas.style.height = Math.round(shown * meta.aspect) + "px";
      canvases.push([canvas, role, meta]);
      figures.append(el("figure", {}, [canvas, el("figcaption", { text: meta.caption || label })]));
    }
    const slider = el("input", { type: "range", min: 0, max: count - 1, step: 1, "aria-label": "slice of " + c.case });
    slider.value = String(slices[c.case]);
    const label = el("span", { class: "slice-label" });
    const show = (k) => {
      k = Math.max(0, Math.min(count - 1, k));
      slices[c.case] = k;
      slider.value = String(k);
      label.textContent = "axial slice " + (k + 1) + " / " + count;
      for (const [canvas, role, meta] of canvases) draw(canvas, index, role, meta, k);
    };
    slider.addEventListener("input", () => show(Number(slider.value)));
    figures.addEventListener("wheel", (event) => {
      event.preventDefault();
      show(slices[c.case] + (event.deltaY > 0 ? -1 : 1));
    }, { passive: false });
    box.append(figures, el("div", { class: "slider" }, [slider, label]));
    show(slices[c.case]);
    return box;
  }

  function details(c, index, span) {
    const checks = el("table", { class: "checks" }, [
      el("thead", {}, [el("tr", {}, ["check", "value", "threshold", "verdict", "message"].map((h) => el("th", { text: h })))]),
      el("tbody", {}, Object.entries(c.checks).map(([name, k]) => el("tr", {}, [
        el("td", { text: name }), el("td", { text: fmt(k.value) }), el("td", { text: fmt(k.threshold) }),
        el("td", { class: "verdict-" + k.verdict, text: k.verdict || "" }), el("td", { text: k.message || "" }),
      ]))),
    ]);
    const facts = el("dl", { class: "facts" });
    const fact = (name, value) => { if (value) facts.append(el("dt", { text: name }), el("dd", { text: value })); };
    fact("input", c.input);
    fact("output", c.output);
    fact("style", c.style);
    fact("sampler", c.sampler ? Object.entries(c.sampler).map(([k, v]) => k + " " + fmt(v)).join(", ") : "");
    fact("trust", trustText(c.trust));
    fact("error", c.error);
    const info = el("div", {}, [Object.keys(c.checks).length ? checks : null, facts,
      c.notes.length ? el("p", { class: "notes", text: c.notes.join("; ") }) : null]);
    const montage = c.qc ? el("div", { class: "montage" }, [el("img", { alt: "QC montage of " + c.case, src: imageData(index, "qc"), decoding: "async" })]) : null;
    const panel = el("div", { class: "panel" }, [viewer(c, index), montage, info]);
    return el("tr", { class: "detail", "data-case": c.case }, [el("td", { colspan: span }, [panel])]);
  }

  function visible(c) {
    return !document.getElementById("only-problems").checked || c.category === "warning" || c.category === "failed";
  }

  function ordered() {
    const indexed = data.cases.map((c, i) => [c, i]);
    if (!sortKey) return indexed;
    const col = columns().find((x) => x.key === sortKey);
    if (!col) return indexed;
    return indexed.sort(([a], [b]) => {
      const x = col.sort(a), y = col.sort(b);
      if (x === null || x === undefined) return y === null || y === undefined ? 0 : 1;
      if (y === null || y === undefined) return -1;
      const diff = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return sortDir * diff;
    });
  }

  function renderHead(cols) {
    const row = el("tr", {});
    for (const col of cols) {
      const th = el("th", { "data-key": col.key, scope: "col", title: col.note || null, "aria-sort": col.key === sortKey ? (sortDir > 0 ? "ascending" : "descending") : null },
        [document.createTextNode(col.label), col.note ? el("small", { text: col.note }) : null]);
      th.addEventListener("click", () => {
        sortDir = sortKey === col.key ? -sortDir : 1;
        sortKey = col.key;
        render();
      });
      row.append(th);
    }
    const head = document.querySelector("#cases thead");
    head.replaceChildren(row);
  }

  function render() {
    const cols = columns();
    renderHead(cols);
    const body = document.querySelector("#cases tbody");
    const rows = [];
    for (const [c, index] of ordered()) {
      const tr = el("tr", { class: "row " + c.category, "data-case": c.case, "data-category": c.category }, cols.map((col) => col.cell(c, index)));
      const hidden = !visible(c);
      tr.hidden = hidden;
      rows.push(tr);
      if (opened.has(c.case) && !hidden) rows.push(details(c, index, cols.length));
    }
    body.replaceChildren(...rows);
    showRated();
  }

  function renderCounts() {
    const n = data.counts;
    const box = document.getElementById("counts");
    const tile = (cls, value, label) => el("div", { class: "count " + cls, "data-count": cls },
      [el("b", { text: String(value) }), document.createTextNode(label)]);
    box.append(tile("cases", n.cases, "cases"), tile("done", n.done, "done"), tile("warning", n.warnings, "with warnings"),
      tile("failed", n.failed, "failed"), tile("pending", n.pending, "pending"));
    if (n.other) box.append(tile("other", n.other, "other state"));
    if (data.missing_shards.length) box.append(tile("failed", data.missing_shards.length, "shards missing: " + data.missing_shards.join(", ")));
    document.getElementById("meta").textContent = data.folder + " | " + data.generated + " | ct2mri " + data.version
      + (data.shard_counts.length ? " | shards: " + data.shard_counts.join(", ") : "");
  }

  document.getElementById("only-problems").addEventListener("change", render);
  document.getElementById("save-ratings").addEventListener("click", saveCsv);
  document.getElementById("load-ratings").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) file.text().then(loadCsv);
  });
  renderCounts();
  render();
  document.body.dataset.ready = "true";
})();
