/** What the HTTP door sends back for one operation (made from an engine outcome in `outcomes.ts`). */
export interface Reply {
  status: number
  body: Record<string, unknown>
  headers?: Record<string, string>
}
