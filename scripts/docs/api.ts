// The API reference: TypeDoc over the public API (src/index.ts), written as Markdown into
// docs/api/ by typedoc-plugin-markdown, so that GitHub and a static site render it like the
// book. Without source links ("Defined in: file:line"), so that a change of line numbers does
// not change the reference.
import { Application } from 'typedoc';
import { API_DIR, ROOT } from './paths.js';

export async function writeApiReference(): Promise<void> {
  const app = await Application.bootstrapWithPlugins({
    entryPoints: [`${ROOT}/src/index.ts`],
    tsconfig: `${ROOT}/tsconfig.build.json`,
    out: API_DIR,
    plugin: ['typedoc-plugin-markdown'],
    readme: 'none',
    name: 'hvkit API',
    disableSources: true,
    hideGenerator: true,
    excludePrivate: true,
    excludeInternal: true,
    logLevel: 'Error',
    // typedoc-plugin-markdown's options.
    hidePageHeader: true,
    hideBreadcrumbs: true,
  } as Parameters<typeof Application.bootstrapWithPlugins>[0]);
  const project = await app.convert();
  if (!project) throw new Error('TypeDoc could not convert src/index.ts');
  await app.generateOutputs(project);
}
