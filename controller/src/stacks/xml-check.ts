// Test helper: a strict little XML reader for the SVGs the renderer writes. It refuses what an
// XML parser refuses in them (unbalanced tags, unquoted attributes, a raw '<' or '&' in text or
// attributes, unknown entities) and returns the element tree with entities decoded.

export interface XmlElement { name: string; attrs: Record<string, string>; children: XmlElement[]; text: string }

const ENTITY = /&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g;

function decode(raw: string, where: string): string {
  const stripped = raw.replace(ENTITY, '');
  if (stripped.includes('&')) throw new Error(`${where}: raw '&' or unknown entity in ${JSON.stringify(raw.slice(0, 80))}`);
  if (stripped.includes('<')) throw new Error(`${where}: raw '<' in ${JSON.stringify(raw.slice(0, 80))}`);
  return raw.replace(ENTITY, (_m, e: string) => e === 'amp' ? '&' : e === 'lt' ? '<' : e === 'gt' ? '>' : e === 'quot' ? '"' : e === 'apos' ? "'"
    : String.fromCodePoint(e.startsWith('#x') ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)));
}

export function parseXml(xml: string): XmlElement {
  let i = 0;
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  const fail: (msg: string) => never = (msg) => { throw new Error(`xml at ${i}: ${msg}`); };
  while (i < xml.length) {
    if (xml.startsWith('<?', i)) { const e = xml.indexOf('?>', i); if (e < 0) fail('unclosed <?'); i = e + 2; continue; }
    if (xml.startsWith('<!--', i)) { const e = xml.indexOf('-->', i); if (e < 0) fail('unclosed comment'); i = e + 3; continue; }
    if (xml.startsWith('<![CDATA[', i)) {
      const e = xml.indexOf(']]>', i);
      const top = stack[stack.length - 1];
      if (e < 0 || !top) fail('CDATA outside an element or unclosed');
      top.text += xml.slice(i + 9, e);
      i = e + 3; continue;
    }
    if (xml.startsWith('</', i)) {
      const m = /^<\/([A-Za-z_][\w.:-]*)\s*>/.exec(xml.slice(i));
      if (!m) fail('bad end tag');
      const top = stack.pop();
      if (!top || top.name !== m[1]) fail(`</${m[1]}> closes <${top?.name ?? 'nothing'}>`);
      i += m[0].length; continue;
    }
    if (xml[i] === '<') {
      const m = /^<([A-Za-z_][\w.:-]*)((?:\s+[A-Za-z_][\w.:-]*\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>/.exec(xml.slice(i));
      if (!m) fail(`bad start tag ${JSON.stringify(xml.slice(i, i + 60))}`);
      const attrs: Record<string, string> = {};
      for (const a of (m[2] ?? '').matchAll(/([A-Za-z_][\w.:-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
        const key = a[1] ?? '';
        if (key in attrs) fail(`attribute ${key} twice`);
        attrs[key] = decode(a[2] ?? a[3] ?? '', `attribute ${key}`);
      }
      const el: XmlElement = { name: m[1] ?? '', attrs, children: [], text: '' };
      const parent = stack[stack.length - 1];
      if (parent) parent.children.push(el);
      else if (root) fail('a second root element');
      else root = el;
      if (!m[3]) stack.push(el);
      i += m[0].length; continue;
    }
    const next = xml.indexOf('<', i);
    const raw = xml.slice(i, next < 0 ? xml.length : next);
    const parent = stack[stack.length - 1];
    if (parent) parent.text += decode(raw, 'text');
    else if (raw.trim()) fail('text outside the root');
    i = next < 0 ? xml.length : next;
  }
  const open = stack[stack.length - 1];
  if (open) fail(`<${open.name}> never closed`);
  if (!root) return fail('no root element');
  return root;
}

export function findAll(el: XmlElement, pred: (e: XmlElement) => boolean, out: XmlElement[] = []): XmlElement[] {
  if (pred(el)) out.push(el);
  for (const c of el.children) findAll(c, pred, out);
  return out;
}
