/**
 * The inspector's page and its style sheet, served at `/inspector` and
 * `/inspector/style.css`: plain HTML that loads one ES module (`script.ts`). Kept as
 * strings, as the script is, so the package ships them compiled.
 *
 * @internal
 */
export const html: string = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Akool avatar simulator · inspector</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/inspector/style.css">
<script type="module" src="/inspector/app.js"></script>
</head>
<body>
<header class="top">
  <h1>Akool avatar simulator <small>inspector</small></h1>
  <p>discovery <code id="discovery"></code> · playout delay <span id="playout"></span> · updates <span id="connection">connecting…</span>
  · data as JSON: <a href="/inspector/api">/inspector/api</a></p>
</header>
<main>
  <section>
    <h2>Fault switches</h2>
    <p class="hint">Each switch is the instance's <code>setFaults</code>, as the CLI's flags set it; it acts on the next connection or frame.</p>
    <div id="instances"></div>
  </section>
  <section>
    <h2>Sessions</h2>
    <p id="empty">No session has connected yet: point a client at the discovery URL above.</p>
    <div id="sessions"></div>
  </section>
</main>
</body>
</html>
`

/** @internal */
export const css: string = `:root { color-scheme: light; font-family: system-ui, sans-serif; color: #111; }
body { margin: 0; background: #fff; }
header.top { padding: 12px 20px; background: #0f172a; color: #e2e8f0; }
header.top h1 { margin: 0 0 4px; font-size: 20px; }
header.top small { font-weight: normal; color: #94a3b8; }
header.top p { margin: 0; font-size: 13px; }
header.top a { color: #93c5fd; }
main { padding: 8px 20px 40px; max-width: 1200px; }
h2 { font-size: 16px; margin: 16px 0 8px; }
.hint { margin: 0 0 8px; font-size: 12px; color: #555; }
fieldset.faults { border: 1px solid #cbd5e1; border-radius: 6px; margin: 0 0 8px; padding: 6px 12px;
  display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 13px; }
fieldset.faults legend { font-weight: 600; }
fieldset.faults input[type=number] { width: 4em; }
.fault-status { flex-basis: 100%; margin: 2px 0; font-size: 12px; color: #555; }
.fault-status[data-ok=false] { color: #b91c1c; }
article.session { border: 1px solid #cbd5e1; border-radius: 8px; padding: 8px 14px 12px; margin: 0 0 14px; }
article.session header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 12px; }
article.session h2 { margin: 4px 0; font-family: ui-monospace, monospace; font-size: 14px; }
.facts { margin: 0; font-size: 13px; color: #334155; flex-basis: 100%; }
.state { font-size: 12px; padding: 1px 8px; border-radius: 10px; background: #e2e8f0; }
.state.live { background: #bbf7d0; }
.state.dropped { background: #fecaca; }
.actions { margin: 6px 0; display: flex; gap: 12px; align-items: center; font-size: 13px; }
figure { margin: 6px 0; }
figcaption { font-size: 12px; color: #475569; margin-bottom: 2px; }
canvas { display: block; width: 100%; border-radius: 4px; }
canvas.waveform { height: 90px; }
canvas.timing { height: 70px; }
canvas.playback { height: 34px; }
ul.marks { margin: 4px 0; padding: 0; list-style: none; display: flex; flex-wrap: wrap; gap: 4px; font-size: 12px; }
.mark { padding: 1px 6px; border-radius: 4px; background: #f1f5f9; }
.mark.drop { background: #fee2e2; }
.mark.reconnect { background: #dcfce7; }
.mark.late { background: #fef3c7; }
.mark.interrupt { background: #ffedd5; }
.faults-in-force { font-size: 12px; color: #475569; margin: 4px 0; }
details { font-size: 13px; margin: 4px 0; }
pre { background: #f8fafc; padding: 6px; overflow-x: auto; font-size: 12px; }
table { border-collapse: collapse; font-size: 12px; }
th, td { text-align: left; padding: 2px 10px 2px 0; vertical-align: top; }
td code { font-size: 11px; word-break: break-all; }
#connection.live { color: #86efac; }
#connection.gone { color: #fca5a5; }
`
