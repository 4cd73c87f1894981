// Sizes and durations as the page shows them to people.

/**
 * A byte count for people: "512 B", "12.3 MiB".
 * @param {number} n
 * @returns {string}
 */
export function formatBytes(n) {
  if (!Number.isFinite(n)) return "? B";
  const sign = n < 0 ? "-" : "";
  let value = Math.abs(n);
  if (value < 1024) return `${sign}${Math.round(value)} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let unit = -1;
  while ((value >= 1024 || value.toFixed(1) === "1024.0") && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${sign}${value.toFixed(1)} ${units[unit]}`;
}

/**
 * A duration for people: "45 s", "1 min 5 s", "2 h 3 min"; "unknown" for null or non-finite.
 * @param {number | null} s  Seconds.
 * @returns {string}
 */
export function formatSeconds(s) {
  if (s === null || !Number.isFinite(s)) return "unknown";
  const t = Math.max(0, Math.round(s));
  if (t < 60) return `${t} s`;
  if (t < 3600) {
    const min = Math.floor(t / 60);
    const sec = t % 60;
    return sec ? `${min} min ${sec} s` : `${min} min`;
  }
  const h = Math.floor(t / 3600);
  const min = Math.floor((t % 3600) / 60);
  return min ? `${h} h ${min} min` : `${h} h`;
}
