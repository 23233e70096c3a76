export * from './client.js'
export * from './wrap.js'
export type { paths, components, operations } from './generated/openapi.js'
