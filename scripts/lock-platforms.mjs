// Adds to package-lock.json the optional, platform-specific packages (other operating
// systems' builds of rollup, msgpackr-extract, ...) that the registry on our machines does
// not serve. npm then leaves them out of the lock, and `npm ci` (which checks every name a
// package lists in optionalDependencies) refuses the lock. The added entries carry `os`,
// `cpu` and `libc`, so npm skips them on machines they do not fit, as it would with a lock
// written where the registry serves them. Run after `npm install`: `node scripts/lock-platforms.mjs`.
import { readFileSync, writeFileSync } from "node:fs"

const OS = ["aix", "android", "darwin", "freebsd", "linux", "netbsd", "openbsd", "openharmony", "sunos", "win32"]
const CPU = ["arm", "arm64", "ia32", "loong64", "mips64el", "ppc64", "riscv64", "s390x", "x64"]

const platformOf = (name) => {
  const tokens = name.slice(name.lastIndexOf("/") + 1).split("-")
  const os = tokens.find((t) => OS.includes(t))
  const cpu = tokens.find((t) => CPU.includes(t))
  if (os === undefined || cpu === undefined) return undefined
  const libc = tokens.some((t) => t.startsWith("musl"))
    ? ["musl"]
    : os === "linux" && tokens.some((t) => t.startsWith("gnu"))
      ? ["glibc"]
      : undefined
  return { os: [os], cpu: [cpu], ...(libc ? { libc } : {}) }
}

const path = new URL("../package-lock.json", import.meta.url)
const lock = JSON.parse(readFileSync(path, "utf8"))
const packages = lock.packages
let added = 0
for (const [where, entry] of Object.entries(packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    if (packages[`node_modules/${name}`] || packages[`${where}/node_modules/${name}`]) continue
    const platform = platformOf(name)
    if (platform === undefined) {
      console.error(`lock-platforms: cannot tell the platform of ${name}; left out`)
      continue
    }
    packages[`node_modules/${name}`] = {
      version,
      ...platform,
      ...(entry.dev ? { dev: true } : {}),
      optional: true,
      ...(entry.license ? { license: entry.license } : {})
    }
    added++
  }
}
lock.packages = Object.fromEntries(
  Object.entries(packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : a > b ? 1 : 0))
)
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`)
console.log(`lock-platforms: added ${added} entr${added === 1 ? "y" : "ies"}`)
