// The comments a module's declarations carry, read with the TypeScript compiler API: each
// export's own comment, and the comment of each member of the object literal it is built from
// (a constant table `{ … } as const`, the fields of `struct('name', { … })`, the bits of
// `bits('name', 'u32', { … })`), nested members by dotted path. The book's tables take their
// "meaning" column from these, so that a meaning lives beside the value it explains.
import { readFileSync } from 'node:fs';
import ts from 'typescript';

export interface DeclarationComments {
  /** The export's own comment ('' when it has none). */
  readonly doc: string;
  /** Member path (`offer.if_type`, `_monitor.monitor_allocated`) → its comment. */
  readonly members: ReadonlyMap<string, string>;
}

const cache = new Map<string, ReadonlyMap<string, DeclarationComments>>();

/** Every exported `const` of the module at `path` (absolute) with its comments. */
export function moduleComments(path: string): ReadonlyMap<string, DeclarationComments> {
  let found = cache.get(path);
  if (!found) {
    found = readComments(path);
    cache.set(path, found);
  }
  return found;
}

function readComments(path: string): ReadonlyMap<string, DeclarationComments> {
  const text = readFileSync(path, 'utf8');
  const file = ts.createSourceFile(path, text, ts.ScriptTarget.ES2022, true);
  const out = new Map<string, DeclarationComments>();
  for (const statement of file.statements) {
    if (!ts.isVariableStatement(statement) || !statement.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)) continue;
    for (const d of statement.declarationList.declarations) {
      if (!ts.isIdentifier(d.name)) continue;
      const members = new Map<string, string>();
      if (d.initializer) collectMembers(d.initializer, '', text, members);
      out.set(d.name.text, { doc: commentBefore(statement, text), members });
    }
  }
  return out;
}

/** The object literal a declaration is built from, if any: itself, under `as`/`satisfies`, or an argument of a call. */
function objectOf(node: ts.Expression): ts.ObjectLiteralExpression | undefined {
  if (ts.isObjectLiteralExpression(node)) return node;
  if (ts.isAsExpression(node) || ts.isSatisfiesExpression(node) || ts.isParenthesizedExpression(node)) return objectOf(node.expression);
  if (ts.isCallExpression(node)) return node.arguments.find(ts.isObjectLiteralExpression);
  return undefined;
}

function collectMembers(init: ts.Expression, prefix: string, text: string, out: Map<string, string>): void {
  const obj = objectOf(init);
  if (!obj) return;
  for (const p of obj.properties) {
    if (!ts.isPropertyAssignment(p) || !(ts.isIdentifier(p.name) || ts.isStringLiteral(p.name))) continue;
    const path = prefix ? `${prefix}.${p.name.text}` : p.name.text;
    const c = commentBefore(p, text);
    if (c) out.set(path, c);
    collectMembers(p.initializer, path, text, out);
  }
}

/** The comments right before `node` (JSDoc or line comments), as one line of text. */
function commentBefore(node: ts.Node, text: string): string {
  const ranges = ts.getLeadingCommentRanges(text, node.getFullStart()) ?? [];
  return ranges
    .map((r) => text.slice(r.pos, r.end))
    .map((c) =>
      c.startsWith('//')
        ? c.replace(/^\/\/\s?/, '')
        : c
            .replace(/^\/\*\*?/, '')
            .replace(/\*\/$/, '')
            .split('\n')
            .map((l) => l.replace(/^\s*\*\s?/, ''))
            .join(' '),
    )
    // Section rulers (`// ----`, `// --- Layouts ---`) head a group of declarations, not this one.
    .filter((c) => !/^[-=\s]*$/.test(c) && !/^-{3,}.*-{3,}$/.test(c.trim()))
    .join(' ')
    .replace(/\s+/g, ' ')
    .trim();
}
