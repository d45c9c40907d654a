/** The error of a build whose context could not be read gives the advice its cause calls for. */
import { describe, expect, it } from 'vitest';
import { contextUnreadable } from '../../src/image/build.js';

const fsError = (code: string, message: string) => Object.assign(new Error(message), { code });

describe('contextUnreadable', () => {
  it('a file without read permission: make it readable or leave it out, not "was the project changed"', () => {
    const err = contextUnreadable(fsError('EACCES', "EACCES: permission denied, open '/p/include/key.pem'"), '/p');
    expect(err).toMatchObject({ code: 'ASTRO_PROJECT_INVALID', path: '/p' });
    expect(err.message).toBe(
      "The build context could not be read (EACCES: permission denied, open '/p/include/key.pem'); the build was stopped. A file or folder of the project cannot be read by this process: make it readable, or list it in .dockerignore.",
    );
    expect(err.cause).toMatchObject({ code: 'EACCES' });
  });

  it('a file gone mid-walk: the project changed; anything else: check the folder and its disk', () => {
    expect(contextUnreadable(fsError('ENOENT', 'gone'), '/p').message).toMatch(/\(gone\); the build was stopped\. Was the project changed during the build\?$/);
    expect(contextUnreadable(fsError('EIO', 'i/o error'), '/p').message).toMatch(/Check the project folder and its disk\.$/);
  });
});
