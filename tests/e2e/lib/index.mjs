// One import for the test files.
import { after } from 'node:test';
import { closeAllSse } from './sse.mjs';
import { closeAllWs } from './ws.mjs';

export * from './config.mjs';
export * from './sse.mjs';
export * from './http.mjs';
export * from './raw.mjs';
export * from './ws.mjs';
export { checkResponse, observeStatus, OpenApiMismatch } from './openapi.mjs';

/** Register an after() hook that closes every stream this file opened (even after a failure). */
export function closeStreamsAfterFile() {
  after(() => {
    closeAllSse();
    closeAllWs();
  });
}
