/**
 * The concurrency chart as a standalone SVG: frames on time and client CPU against the
 * number of sessions, the SDK beside the baseline. Two line panels are a few dozen lines
 * of SVG; a charting library (and a headless browser to render it) would be far more.
 */

interface Point {
  readonly sessions: number
  readonly sdk: { readonly onTime: number; readonly cpu: number }
  readonly baseline: { readonly onTime: number; readonly cpu: number }
}

const COLORS = { sdk: "#1f6feb", baseline: "#d1242f" } as const
const PANEL = { width: 400, height: 260, left: 60, right: 35, top: 40, bottom: 50 }

const escapeXml = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

const niceMax = (value: number) => {
  if (!(value > 0)) return 1
  const step = 10 ** Math.floor(Math.log10(value))
  return Math.ceil(value / step) * step
}

const panel = (
  x0: number,
  title: string,
  unit: string,
  points: ReadonlyArray<Point>,
  pick: (p: Point["sdk"]) => number,
  range: readonly [number, number]
) => {
  const { width, height, left, right, top, bottom } = PANEL
  const plotW = width - left - right
  const plotH = height - top - bottom
  const xs = points.map((p) => p.sessions)
  const xMax = Math.max(...xs)
  const x = (sessions: number) => x0 + left + (sessions / xMax) * plotW
  const y = (value: number) =>
    top + plotH - ((Math.min(range[1], Math.max(range[0], value)) - range[0]) / (range[1] - range[0])) * plotH
  const parts: Array<string> = []
  parts.push(`<text x="${x0 + width / 2}" y="20" text-anchor="middle" font-weight="bold">${escapeXml(title)}</text>`)
  for (let i = 0; i <= 4; i++) {
    const value = range[0] + ((range[1] - range[0]) * i) / 4
    parts.push(
      `<line x1="${x0 + left}" x2="${x0 + width - right}" y1="${y(value)}" y2="${y(value)}" stroke="#ddd"/>`,
      `<text x="${x0 + left - 6}" y="${y(value) + 4}" text-anchor="end">${Number(value.toFixed(2))}${unit}</text>`
    )
  }
  for (const s of xs) {
    parts.push(`<text x="${x(s)}" y="${top + plotH + 18}" text-anchor="middle">${s}</text>`)
  }
  parts.push(`<text x="${x0 + left + plotW / 2}" y="${height - 10}" text-anchor="middle">sessions</text>`)
  for (const client of ["baseline", "sdk"] as const) {
    const line = points.map((p) => `${x(p.sessions).toFixed(1)},${y(pick(p[client])).toFixed(1)}`).join(" ")
    parts.push(`<polyline points="${line}" fill="none" stroke="${COLORS[client]}" stroke-width="2"/>`)
    for (const p of points) {
      const value = pick(p[client])
      parts.push(
        `<circle cx="${x(p.sessions).toFixed(1)}" cy="${y(value).toFixed(1)}" r="3.5" fill="${COLORS[client]}"><title>${client} ${p.sessions}: ${value.toFixed(2)}${unit}</title></circle>`
      )
    }
  }
  return parts.join("\n")
}

export const concurrencyChart = (input: { readonly title: string; readonly points: ReadonlyArray<Point> }): string => {
  const points = [...input.points].sort((a, b) => a.sessions - b.sessions)
  const lowest = Math.min(...points.flatMap((p) => [p.sdk.onTime, p.baseline.onTime]))
  const onTimeFloor = lowest >= 99 ? 98 : lowest >= 90 ? 90 : 0
  const cpuMax = niceMax(Math.max(...points.flatMap((p) => [p.sdk.cpu, p.baseline.cpu])))
  const width = PANEL.width * 2
  const height = PANEL.height + 60
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
${panel(0, "frames on time", "%", points, (c) => c.onTime, [onTimeFloor, 100])}
${panel(PANEL.width, "client CPU", "%", points, (c) => c.cpu, [0, cpuMax])}
<g transform="translate(${PANEL.left}, ${PANEL.height + 10})">
<rect width="12" height="12" fill="${COLORS.sdk}"/><text x="18" y="11">akool-streaming-avatar</text>
<rect x="180" width="12" height="12" fill="${COLORS.baseline}"/><text x="198" y="11">hand-written ws client (baseline)</text>
<text y="32" fill="#555">${escapeXml(input.title)}; where the lines overlap, the SDK's is drawn on top</text>
</g>
</svg>
`
}
