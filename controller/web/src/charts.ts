// Time series with uPlot: x in Unix seconds, one or more y series, appended to live.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { h } from './dom.js';

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];

export class TimeChart {
  readonly el: HTMLElement;
  private plot: uPlot | undefined;
  private data: number[][];
  private pendingDraw = false;

  constructor(readonly title: string, readonly series: string[], readonly opts: { unit?: string; maxPoints?: number; width?: number; height?: number;
    fmt?: (v: number) => string; yRange?: [number, number] } = {}) {
    this.el = h('div', { class: 'chart', 'data-chart': title });
    this.data = [[], ...series.map(() => [])];
  }

  /** Creates the plot once the element is in the document (uPlot measures nothing, but needs a parent). */
  mount(): void {
    const fmt = this.opts.fmt;
    this.plot = new uPlot({
      title: this.title, width: this.opts.width ?? 460, height: this.opts.height ?? 200,
      scales: { x: { time: true }, ...(this.opts.yRange ? { y: { range: this.opts.yRange } } : {}) },
      series: [{}, ...this.series.map((label, i) => ({ label, stroke: COLORS[i % COLORS.length]!, width: 1.5, points: { show: false },
        ...(fmt ? { value: (_u: uPlot, v: number | null) => (v === null ? '-' : fmt(v)) } : {}) }))],
      axes: [{}, { size: 70, ...(fmt ? { values: (_u: uPlot, vals: number[]) => vals.map((v) => fmt(v)) } : {}) }],
      legend: { live: true },
    }, this.data as uPlot.AlignedData, this.el);
  }

  set(x: number[], ys: (number | null)[][]): void {
    this.data = [x, ...ys] as number[][];
    this.plot?.setData(this.data as uPlot.AlignedData);
  }

  /** Appends one point (x in seconds); redraws at most once per animation frame. */
  push(x: number, ys: (number | null)[]): void {
    const max = this.opts.maxPoints ?? 2000;
    this.data[0]!.push(x);
    ys.forEach((y, i) => this.data[i + 1]!.push(y as number));
    if (this.data[0]!.length > max) for (const col of this.data) col.splice(0, col.length - max);
    if (!this.pendingDraw) {
      this.pendingDraw = true;
      requestAnimationFrame(() => { this.pendingDraw = false; this.plot?.setData(this.data as uPlot.AlignedData); });
    }
  }

  get points(): number {
    return this.data[0]!.length;
  }

  destroy(): void {
    this.plot?.destroy();
  }
}
