/** What a door (HTTP today, MCP later) sends back for one operation. */
export interface Reply {
  status: number
  body: Record<string, unknown>
  headers?: Record<string, string>
}
