// An interactive flame graph drawn on a canvas from GET /api/v1/flamegraph?format=json: click a
// frame to zoom into it (click the root or press Esc to zoom out), type to search (matches are
// drawn in magenta and their share of the total is shown), hover for the frame's value. In
// differential mode (the answer carries `baseline` per frame) colours go from blue (share
// shrank) to red (share grew), as in Brendan Gregg's differential flame graphs.
export interface FlameNode { name: string; value: number; self: number; baseline?: number; children: FlameNode[] }

interface Laid { node: FlameNode; depth: number; x: number; w: number; parent: Laid | undefined }

const ROW = 18;

function hash(s: string): number {
  let x = 0;
  for (let i = 0; i < s.length; i++) x = (x * 31 + s.charCodeAt(i)) >>> 0;
  return x;
}

export class FlameGraph {
  readonly canvas: HTMLCanvasElement;
  readonly info: HTMLElement;
  private laid: Laid[] = [];
  private zoom: Laid | undefined;
  private search: RegExp | undefined;
  private rootTotal = 1;
  private baseTotal = 0;
  /** Frames drawn on the last paint and, of them, search matches: what the tests read. */
  drawn = 0;
  matched = 0;

  constructor(private readonly root: FlameNode, opts: { baselineTotal?: number; unit?: string } = {}) {
    this.canvas = document.createElement('canvas');
    this.canvas.className = 'flame';
    this.info = document.createElement('div');
    this.info.className = 'flame-info';
    this.rootTotal = root.value || 1;
    this.baseTotal = opts.baselineTotal ?? 0;
    this.unit = opts.unit ?? 'samples';
    this.layout();
    this.canvas.addEventListener('click', (e) => this.onClick(e));
    this.canvas.addEventListener('mousemove', (e) => this.onMove(e));
  }

  private readonly unit: string;

  get zoomed(): boolean {
    return this.zoom !== undefined;
  }

  get maxDepth(): number {
    return this.laid.reduce((m, l) => Math.max(m, l.depth), 0);
  }

  private layout(): void {
    this.laid = [];
    const walk = (n: FlameNode, depth: number, x: number, w: number, parent: Laid | undefined) => {
      const l: Laid = { node: n, depth, x, w, parent };
      this.laid.push(l);
      let cx = x;
      for (const c of n.children) {
        const cw = n.value ? (w * c.value) / n.value : 0;
        walk(c, depth + 1, cx, cw, l);
        cx += cw;
      }
    };
    walk(this.root, 0, 0, 1, undefined);
  }

  setSearch(text: string): { matches: number; share: number } {
    this.search = text ? new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i') : undefined;
    this.draw();
    // Share of the total in matching frames, not counting a match nested in another match twice.
    let value = 0;
    const walk = (n: FlameNode) => { if (this.search?.test(n.name)) { value += n.value; return; } n.children.forEach(walk); };
    if (this.search) walk(this.root);
    return { matches: this.matched, share: value / this.rootTotal };
  }

  zoomTo(l: Laid | undefined): void {
    this.zoom = l && l.depth > 0 ? l : undefined;
    this.draw();
  }

  private view(): { x0: number; w: number; d0: number } {
    return this.zoom ? { x0: this.zoom.x, w: this.zoom.w, d0: 0 } : { x0: 0, w: 1, d0: 0 };
  }

  private isAncestorOfZoom(l: Laid): boolean {
    for (let z = this.zoom; z; z = z.parent) if (z === l) return true;
    return false;
  }

  /** Drawn at the current zoom: the zoomed frame's ancestors (full width) and everything inside it. */
  private inView(l: Laid): boolean {
    const z = this.zoom;
    if (!z) return true;
    return this.isAncestorOfZoom(l) || (l.x >= z.x - 1e-12 && l.x + l.w <= z.x + z.w + 1e-12 && l.depth > z.depth);
  }

  private colour(l: Laid): string {
    const n = l.node;
    if (this.search?.test(n.name)) return '#e600e6';
    if (n.baseline !== undefined) {
      // Shares, so windows of different lengths compare; an empty baseline makes everything new (red).
      const now = n.value / this.rootTotal, before = this.baseTotal > 0 ? n.baseline / this.baseTotal : 0;
      const d = Math.max(-1, Math.min(1, (now - before) / Math.max(now, before, 1e-9)));
      const k = Math.round(255 * (1 - Math.abs(d)));
      return d >= 0 ? `rgb(255,${k},${k})` : `rgb(${k},${k},255)`;
    }
    const x = hash(n.name);
    return `rgb(${205 + (x % 50)},${80 + ((x >> 8) % 130)},${30 + ((x >> 16) % 40)})`;
  }

  draw(): void {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const width = c.parentElement?.clientWidth || 1000;
    // Zoomed in, the canvas is only as tall as the zoomed frame's deepest descendant.
    let depth = 0;
    for (const l of this.laid) if (this.inView(l)) depth = Math.max(depth, l.depth);
    const height = (depth + 1) * ROW + 4;
    c.style.width = `${width}px`;
    c.style.height = `${height}px`;
    c.width = Math.round(width * dpr);
    c.height = Math.round(height * dpr);
    const g = c.getContext('2d')!;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, width, height);
    g.font = '12px ui-monospace, monospace';
    g.textBaseline = 'middle';
    const v = this.view();
    this.drawn = 0;
    this.matched = 0;
    for (const l of this.laid) {
      let x: number, w: number;
      if (this.zoom && this.isAncestorOfZoom(l)) { x = 0; w = width; }
      else {
        x = ((l.x - v.x0) / v.w) * width;
        w = (l.w / v.w) * width;
      }
      if (w < 0.5 || x + w < 0 || x > width || !this.inView(l)) continue;
      const y = height - (l.depth + 1) * ROW;
      g.fillStyle = this.colour(l);
      if (this.search?.test(l.node.name)) this.matched++;
      g.fillRect(x, y, Math.max(w - 0.5, 0.5), ROW - 1);
      this.drawn++;
      if (w > 30) {
        g.fillStyle = '#111';
        const label = l.node.name;
        const maxChars = Math.floor((w - 6) / 7);
        g.fillText(label.length > maxChars ? `${label.slice(0, Math.max(0, maxChars - 2))}..` : label, x + 3, y + ROW / 2);
      }
    }
    this.canvas.dataset['drawn'] = String(this.drawn);
    this.canvas.dataset['matched'] = String(this.matched);
    this.canvas.dataset['zoom'] = this.zoom?.node.name ?? '';
  }

  private hit(e: MouseEvent): Laid | undefined {
    const r = this.canvas.getBoundingClientRect();
    const px = e.clientX - r.left, py = e.clientY - r.top;
    const width = r.width, height = r.height;
    const depth = Math.floor((height - py) / ROW);
    const v = this.view();
    const fx = v.x0 + (px / width) * v.w;
    return this.laid.find((l) => l.depth === depth && (this.zoom && this.isAncestorOfZoom(l) ? true : fx >= l.x && fx < l.x + l.w));
  }

  private onClick(e: MouseEvent): void {
    const l = this.hit(e);
    if (!l) return;
    this.zoomTo(this.isAncestorOfZoom(l) && l !== this.zoom ? (l.depth === 0 ? undefined : l) : l);
  }

  private onMove(e: MouseEvent): void {
    const l = this.hit(e);
    if (!l) { this.info.textContent = ' '; return; }
    const n = l.node;
    const pct = ((100 * n.value) / this.rootTotal).toFixed(2);
    let text = `${n.name}: ${n.value.toLocaleString()} ${this.unit} (${pct}%), self ${n.self.toLocaleString()}`;
    if (n.baseline !== undefined && this.baseTotal > 0) {
      text += `; baseline ${((100 * n.baseline) / this.baseTotal).toFixed(2)}%`;
    }
    this.info.textContent = text;
  }
}
