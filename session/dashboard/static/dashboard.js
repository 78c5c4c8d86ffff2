// The dashboard page: polls /api/state, draws it with DOM text only (no innerHTML: every value is text), charts it
// with uPlot (served from this package), shows each running worker's camera through /video/<n>, and stops the run
// with a POST that carries the page's CSRF token, after a confirmation.
"use strict";

(function () {
  const REFRESH_MS = 2000;
  const RATE_POINTS = 300; // steps/s points kept per worker: 10 minutes at the refresh interval
  // Stall kinds that are failures (red), as session.insight.live and .causes name them; the rest are waits (amber).
  const FAILURES = new Set(["exception", "exited", "gpu-memory", "storage-endpoint", "storage-credentials",
                            "storage-bucket", "storage-access"]);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const charts = {};
  const rates = { t: [], byWorker: {} };
  const streams = {}; // worker number -> {id: container id, camera, img}
  let latest = null;

  function text(tag, value, cls) {
    const el = document.createElement(tag);
    el.textContent = value === null || value === undefined ? "-" : String(value);
    if (cls) el.className = cls;
    return el;
  }

  function row(cells, numeric) {
    const tr = document.createElement("tr");
    cells.forEach((value, i) => tr.appendChild(text("td", value, numeric && numeric.includes(i) ? "num" : "")));
    return tr;
  }

  function fill(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  const fixed = (v, d = 2) => (v === null || v === undefined ? "-" : Number(v).toFixed(d));
  const pct = (v) => (v === null || v === undefined ? "-" : Number(v).toFixed(1) + "%");

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "-";
    const s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return h ? `${h} h ${String(m).padStart(2, "0")} min` : m ? `${m} min ${s % 60} s` : `${s} s`;
  }

  function chart(id, series, x, time = false) {
    const el = $(id);
    const width = Math.max(240, el.clientWidth || 300);
    if (!charts[id]) {
      charts[id] = new uPlot({
        width, height: 180,
        legend: { live: false },
        scales: { x: { time } },
        // Iterations are whole numbers: no 0.5 ticks.
        axes: [time ? { label: x } : { label: x, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] }, {}],
        series: [{ label: x }, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2,
                                                       points: { show: true, size: 5 } }))],
      }, [[], ...series.map(() => [])], el);
    } else if (Math.abs(charts[id].width - width) > 20) {
      charts[id].setSize({ width, height: 180 });
    }
    return charts[id];
  }

  function render(state) {
    latest = state;
    const live = state.live;
    $("run").textContent = `run ${state.run.id} · ${state.run.model_prefix} · ${state.run.workers} worker(s)` +
      (state.running ? " · training" : " · not running");
    $("updated").textContent = "updated " + new Date(state.at).toLocaleTimeString();
    $("stop").disabled = !state.running;
    const error = state.feed_error || (live && (live.engine_error || live.progress_error));
    $("feed-error").hidden = !error;
    $("feed-error").textContent = error || "";
    renderHealth(state, live);
    renderTraining(live);
    renderVideo(state);
    renderTime(state.time);
    renderCost(state.cost, state.running);
  }

  function renderHealth(state, live) {
    const stalls = live ? live.stalls : [];
    const items = stalls.map((stall) => {
      const li = text("li", `${stall.subject}: ${stall.message}`, FAILURES.has(stall.kind) ? "bad" : "warn");
      li.dataset.kind = stall.kind;
      li.appendChild(text("span", "likely cause: " + stall.cause, "cause"));
      return li;
    });
    if (!items.length) items.push(text("li", live ? "no stalls" : "waiting for the first reading", "ok"));
    $("stalls").replaceChildren(...items);
    fill($("containers").tBodies[0], state.containers.map((c) => {
      const role = c.role === "worker" && c.worker ? `worker ${c.worker}` : c.role;
      const what = c.exit_code === null || c.exit_code === undefined ? c.status : `${c.status} (${c.exit_code})`;
      const tr = row([role, what, c.uptime_s === null ? "-" : duration(c.uptime_s), c.node || "this host", c.name]);
      tr.className = c.running ? "" : c.exit_code ? "bad" : "dim";
      return tr;
    }));
    const host = [];
    if (live) {
      if (live.gpus && live.gpus.length) {
        live.gpus.forEach((g) => host.push(`GPU ${g.index} ${g.utilization_pct.toFixed(0)}%, ` +
          `${(g.memory_used_mib / 1024).toFixed(1)}/${(g.memory_total_mib / 1024).toFixed(1)} GiB`));
      } else host.push(live.gpu_error ? "GPU: " + live.gpu_error : "no GPU");
      live.disks.forEach((d) => host.push(`disk ${d.path} ${d.used_pct.toFixed(0)}% used, ` +
        `${(d.free_bytes / 2 ** 30).toFixed(1)} GiB free`));
    }
    $("host").textContent = host.join(" · ");
    // Storage as the live view last read the run's progress from it (every 30 s): reachable, or why not.
    const storage = $("storage");
    if (!live || (!live.progress && !live.progress_error)) {
      storage.textContent = "storage: not read yet";
      storage.className = "dim";
    } else if (live.progress_error) {
      storage.textContent = "storage: cannot read the run's progress: " + live.progress_error;
      storage.className = "bad";
    } else {
      const p = live.progress;
      storage.textContent = `storage: reachable · ${p.episodes} episodes, ${p.laps} laps in s3://${state.run.bucket}/` +
        `${p.model_prefix}/` + (p.newest_checkpoint ? ` · newest checkpoint ${p.newest_checkpoint.name}` : "");
      storage.className = "ok";
    }
  }

  function renderTraining(live) {
    if (!live) return;
    const t = live.trainer;
    const said = [t.state ? `trainer ${t.state}` : "trainer ?"];
    if (t.iteration !== null) said.push(`iteration ${t.iteration}`);
    if (t.checkpoint !== null) said.push(`checkpoint ${t.checkpoint}`);
    said.push(`${t.episodes} episodes received`);
    if (t.updating_policy) said.push("updating the policy");
    $("trainer").textContent = said.join(" · ");
    const best = live.best;
    $("best").textContent = best ? `best checkpoint ${best.number}` +
      (best.metric !== null ? ` (${best.metric_name || "metric"} ${fixed(best.metric, 1)})` : "") +
      `, as ${best.source} says` : "no best checkpoint yet";

    const rows = live.iterations;
    const x = rows.map((r) => r.number);
    chart("chart-reward", [{ label: "mean reward", color: "#1565c0" }], "iteration")
      .setData([x, rows.map((r) => r.mean_reward)]);
    chart("chart-completion", [{ label: "training", color: "#2e7d32" }, { label: "evaluation", color: "#ef6c00" }],
          "iteration").setData([x, rows.map((r) => r.mean_completion),
                                rows.map((r) => (r.eval_metric === null || r.eval_metric === "progress" ? r.eval_mean : null))]);
    fill($("iterations").tBodies[0], rows.slice().reverse().map((r) => row(
      [r.number, r.checkpoint, r.episodes, fixed(r.mean_reward), pct(r.mean_completion), r.laps,
       r.eval_metric === null || r.eval_metric === "progress" ? pct(r.eval_mean) : fixed(r.eval_mean)],
      [0, 1, 2, 3, 4, 5, 6])));

    fill($("workers").tBodies[0], live.workers.map((w) => {
      const tr = row([w.number, w.state && w.state !== "running" ? w.state : w.phase, w.episodes, w.laps,
                      pct(w.progress), fixed(w.steps_per_s, 1), w.checkpoint], [2, 3, 4, 5, 6]);
      tr.dataset.worker = w.number;
      return tr;
    }));
    rateChart(live);
  }

  function rateChart(live) {
    const workers = live.workers.map((w) => w.number);
    rates.t.push(Date.parse(live.at) / 1000);
    workers.forEach((n) => { if (!rates.byWorker[n]) rates.byWorker[n] = rates.t.slice(0, -1).map(() => null); });
    Object.keys(rates.byWorker).forEach((n) => {
      const w = live.workers.find((item) => String(item.number) === n);
      rates.byWorker[n].push(w ? w.steps_per_s : null);
    });
    if (rates.t.length > RATE_POINTS) {
      rates.t.shift();
      Object.values(rates.byWorker).forEach((points) => points.shift());
    }
    const numbers = Object.keys(rates.byWorker).sort((a, b) => a - b);
    const id = "chart-rate";
    if (charts[id] && charts[id].series.length !== numbers.length + 1) { charts[id].destroy(); delete charts[id]; }
    const palette = ["#1565c0", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#4e342e", "#37474f"];
    const plot = chart(id, numbers.map((n, i) => ({ label: `worker ${n}`, color: palette[i % palette.length] })),
                       "time", true);
    plot.setData([rates.t.slice(), ...numbers.map((n) => rates.byWorker[n].slice())]);
  }

  function renderVideo(state) {
    const camera = $("camera").value;
    const running = state.containers.filter((c) => c.role === "worker" && c.running && c.worker);
    const wanted = new Set(running.map((c) => c.worker));
    Object.keys(streams).forEach((n) => {
      if (!wanted.has(Number(n))) { streams[n].figure.remove(); delete streams[n]; }
    });
    running.forEach((c) => {
      let s = streams[c.worker];
      if (!s) {
        const figure = document.createElement("figure");
        const img = document.createElement("img");
        img.alt = `worker ${c.worker}'s camera`;
        img.dataset.worker = c.worker;
        img.addEventListener("error", () => { // a worker restarting: ask again at the next refresh
          if (streams[c.worker]) streams[c.worker].id = null;
        });
        figure.append(img, text("figcaption", `worker ${c.worker}`));
        $("streams").appendChild(figure);
        s = streams[c.worker] = { figure, img, id: null, camera: null };
      }
      // A new container or a restarted one (the same id, a new start), or another camera: connect again.
      const key = `${c.id}@${c.started_at}`;
      if (s.id !== key || s.camera !== camera) {
        s.id = key;
        s.camera = camera;
        s.img.src = `/video/${c.worker}?camera=${encodeURIComponent(camera)}&quality=75&width=480&height=360` +
          `&c=${encodeURIComponent(c.id.slice(0, 12))}&t=${encodeURIComponent(c.started_at || "")}`;
      }
    });
  }

  function renderTime(time) {
    const items = [];
    const add = (term, value) => items.push(text("dt", term), text("dd", value));
    add("run state", time.status || "none recorded");
    add("trained", time.trained_s === null ? "-" : duration(time.trained_s));
    add("time limit", time.max_minutes ? `${time.max_minutes} min` : "none");
    if (time.time_left_s !== null) add("time left", duration(time.time_left_s));
    add("idle stop", time.idle_stop_minutes ? `after ${time.idle_stop_minutes} min without training` : "off");
    $("times").replaceChildren(...items);
  }

  const usd = (v) => (v === null || v === undefined ? "-" : "$" + Number(v).toFixed(2));

  function renderCost(cost, running) {
    const items = [];
    const add = (term, value, key) => {
      const dd = text("dd", value);
      dd.dataset.cost = key;
      items.push(text("dt", term), dd);
    };
    add("price", cost.hourly_usd === null ? cost.price_note || "unknown" :
      `$${cost.hourly_usd.toFixed(3)}/h · ${cost.machine}${cost.spot ? " spot" : ""}`, "price");
    add("this run", cost.run_training_s === null ? "-" :
      `${usd(cost.run_usd)} (${duration(cost.run_training_s)} trained)`, "run");
    const month = `${usd(cost.month_usd)} (${duration(cost.month_training_s)} trained)`;
    add(`month ${cost.month}`, cost.budget_used_pct === null ? month :
      `${month}, ${cost.budget_used_pct.toFixed(1)}% of the budget`, "month");
    add("monthly budget", cost.budget_error ? "unknown: " + cost.budget_error :
      cost.budget_usd === null ? "none set (the stack's monthlyBudget)" : usd(cost.budget_usd), "budget");
    add("idle stop", cost.idle_stop_in_s !== null ? `in ${duration(cost.idle_stop_in_s)} if nobody trains or types` :
      running ? "not while training" : "not counting (off, or the first boot is not done)", "idle");
    $("costs").replaceChildren(...items);
    $("cost-counted").textContent = "Counts " + cost.counted + "." + (cost.basis ? " Prices: " + cost.basis + "." : "");
  }

  async function refresh() {
    try {
      const answer = await fetch("/api/state", { cache: "no-store" });
      if (answer.status === 401) { $("run").textContent = "the session ended: open the URL with the token again"; return; }
      if (!answer.ok) throw new Error(`${answer.status} ${answer.statusText}`);
      render(await answer.json());
    } catch (error) {
      $("updated").textContent = "cannot reach the dashboard: " + error.message;
    } finally {
      setTimeout(refresh, REFRESH_MS);
    }
  }

  // Every control asks first: `yes` runs only after the person confirms in the dialog.
  function confirmThen(title, what, yesLabel, danger, yes) {
    const dialog = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = what;
    $("confirm-yes").textContent = yesLabel;
    $("confirm-yes").className = danger ? "danger" : "";
    $("confirm-yes").onclick = () => { dialog.close(); yes(); };
    dialog.showModal();
  }

  function post(path) {
    return fetch(path, { method: "POST", headers: { "X-CSRF-Token": csrf } });
  }

  function runName() {
    return latest ? `run ${latest.run.id} (${latest.run.model_prefix})` : "the run";
  }

  // A control that answers with the lines the command said (increment, evaluate a clone, export).
  function lineControl(id, title, what, yesLabel, path, doing) {
    $(id).addEventListener("click", () => confirmThen(title, what(), yesLabel, false, async () => {
      $(id).disabled = true;
      $("said").textContent = doing;
      try {
        const answer = await post(path);
        // A refusal is the command's one line as JSON; anything else (a bug: its traceback is in the server's log)
        // is its status.
        const body = await answer.json().catch(() => ({ error: `${answer.status} ${answer.statusText}` }));
        $("said").textContent = answer.ok ? body.lines.join("\n") : "refused: " + body.error;
      } catch (error) {
        $("said").textContent = "refused: " + error.message;
      } finally {
        $(id).disabled = false;
      }
    }));
  }

  function setUpControls() {
    $("confirm-no").addEventListener("click", () => $("confirm").close());
    $("stop").addEventListener("click", () => confirmThen(
      "Stop training?",
      `This stops ${runName()}: the trainer and every worker, as \`deepracer stop\` does. Checkpoints stay in ` +
        "storage, the logs go beside the model, and the run is not resumed at the next boot.",
      "Stop training", true, async () => {
        $("stop").disabled = true;
        $("said").textContent = "stopping…";
        try {
          const answer = await post("/api/stop");
          const body = await answer.json();
          $("said").textContent = answer.ok ? body.lines.join("\n") || "stopped" : "not stopped: " + body.error;
        } catch (error) {
          $("said").textContent = "not stopped: " + error.message;
        }
      }));
    lineControl("increment", "Increment?",
      () => `This rewrites run.env as \`deepracer increment\` does: the next training continues from the last ` +
        `checkpoint of ${runName()} under the next free model prefix (a backup of run.env stays beside it). ` +
        "Nothing starts: `deepracer train` does.",
      "Increment", "/api/increment", "incrementing…");
    lineControl("evaluate-clone", "Evaluate a clone?",
      () => `This copies the model of ${runName()} to <prefix>-E and evaluates that copy while training goes on, as ` +
        "`deepracer evaluate --clone --detach` does (the settings of run.env: DR_EVAL_*). It answers once the car " +
        "drives; `deepracer stop-evaluation` shows the result.",
      "Evaluate", "/api/evaluate-clone", "starting the evaluation (until the car drives)…");
    lineControl("export", "Export the best checkpoint?",
      () => `This packages the best checkpoint of ${runName()} as DeepRacer on AWS imports it, to ` +
        `s3://${latest ? latest.run.bucket : "BUCKET"}/${latest ? latest.run.model_prefix : "PREFIX"}-export ` +
        "(which must be empty), as `deepracer models export --checkpoint best` does.",
      "Export", "/api/export", "exporting…");
    $("car-package").addEventListener("click", () => confirmThen(
      "Car package of the best checkpoint?",
      `This packs the best checkpoint of ${runName()} for the physical car (model_metadata.json and ` +
        "agent/model.pb, as `deepracer models car-package --checkpoint best` does) and downloads it.",
      "Download", false, async () => {
        $("said").textContent = "packing…";
        try {
          const answer = await post("/api/car-package");
          if (!answer.ok) throw new Error((await answer.json()).error);
          const name = /filename="([^"]+)"/.exec(answer.headers.get("content-disposition") || "");
          const link = document.createElement("a");
          link.href = URL.createObjectURL(await answer.blob());
          link.download = name ? name[1] : "car-package.tar.gz";
          link.click();
          setTimeout(() => URL.revokeObjectURL(link.href), 60000);
          $("said").textContent = "downloaded " + link.download;
        } catch (error) {
          $("said").textContent = "no car package: " + error.message;
        }
      }));
  }

  $("camera").addEventListener("change", () => latest && renderVideo(latest));
  window.addEventListener("resize", () => Object.keys(charts).forEach((id) => {
    charts[id].setSize({ width: Math.max(240, $(id).clientWidth || 300), height: 180 });
  }));
  setUpControls();
  window.dashboard = { charts, rates, latest: () => latest };
  refresh();
})();
