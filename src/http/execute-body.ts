// The request schemas live in ./schemas.ts. This name stays only for `src/messaging/service.ts`,
// which imports `MessageBody` from here until the engine's typed outcomes move that import.
export type { MessageBody } from './schemas.js'
