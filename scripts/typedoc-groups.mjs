/**
 * typedoc plugin: sorts the main entry's ~140 exports into groups a reader looks for (Client,
 * Flows, Events, Errors, Schemas) instead of typedoc's one list per kind. The group follows from
 * the file a declaration lives in (and, for event unions declared beside their flow, its name),
 * so a new export lands in its group without a tag; an explicit `@group` tag still wins.
 */
import { Comment, CommentTag, Converter } from 'typedoc';

/** First match wins: [file pattern, group]. */
const BY_FILE = [
  [/^src\/core\/(errors|error-codes|error-base|flow-errors)\.ts$/, 'Errors'],
  [/^src\/client\/schemas\.ts$/, 'Schemas'],
  [/^src\/client\/events\.ts$/, 'Events'],
  [/^src\/client\/(client|options|transport|resources|token|path|update-body)\.ts$/, 'Client'],
  [/^src\/client\//, 'Flows'],
  [/^src\/(core|version\.ts|image\/docker-like\.ts)/, 'Client'],
];

function groupOf(reflection) {
  const file = reflection.sources?.[0]?.fileName?.replace(/^.*?(?=src\/)/, '') ?? '';
  const byFile = BY_FILE.find(([pattern]) => pattern.test(file))?.[1];
  if (byFile !== 'Errors' && /Event$/.test(reflection.name)) return 'Events';
  return byFile;
}

/** @param {import('typedoc').Application} app */
export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    const main = context.project.children?.find((module) => module.name === 'index');
    for (const child of main?.children ?? []) {
      if (child.comment?.blockTags.some((tag) => tag.tag === '@group')) continue;
      const group = groupOf(child);
      if (!group) continue;
      child.comment ??= new Comment();
      child.comment.blockTags.push(new CommentTag('@group', [{ kind: 'text', text: group }]));
    }
  });
}
