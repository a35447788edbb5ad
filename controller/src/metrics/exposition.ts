// Prometheus text exposition format 0.0.4, written by hand: families with HELP and TYPE, one
// sample per line, label values escaped.
// https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type MetricType = 'counter' | 'gauge';
export type Labels = Record<string, string>;
/** A duration's median, 99th percentile and maximum, in seconds. */
export interface Quantiles { p50: number; p99: number; max: number }

/** Label values: backslash, double quote and line feed escaped. */
export const escapeLabelValue = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
/** HELP text: backslash and line feed escaped. */
export const escapeHelp = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function formatValue(v: number | bigint): string {
  if (typeof v === 'bigint') return v.toString();
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

interface Family { name: string; type: MetricType; help: string; samples: string[] }

export class Exposition {
  private readonly families = new Map<string, Family>();

  /** Declares a family (once); samples are written under it in the order they are added. */
  family(name: string, type: MetricType, help: string): (labels: Labels, value: number | bigint) => void {
    if (!NAME.test(name)) throw new Error(`invalid metric name "${name}"`);
    let f = this.families.get(name);
    if (!f) { f = { name, type, help, samples: [] }; this.families.set(name, f); }
    const fam = f;
    return (labels, value) => {
      const pairs = Object.entries(labels).map(([k, v]) => {
        if (!LABEL.test(k)) throw new Error(`invalid label name "${k}" on ${name}`);
        return `${k}="${escapeLabelValue(v)}"`;
      });
      fam.samples.push(`${name}${pairs.length ? `{${pairs.join(',')}}` : ''} ${formatValue(value)}`);
    };
  }

  /** A gauge family of one duration's quantiles, labelled quantile="0.5", "0.99" and "1" (the max). */
  quantiles(name: string, help: string, q: Quantiles): void {
    const f = this.family(name, 'gauge', help);
    f({ quantile: '0.5' }, q.p50);
    f({ quantile: '0.99' }, q.p99);
    f({ quantile: '1' }, q.max);
  }

  toString(): string {
    let out = '';
    for (const f of this.families.values()) {
      out += `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}\n`;
      for (const s of f.samples) out += s + '\n';
    }
    return out;
  }
}
