// Run the CLI from source (no build): `node --import tsx scripts/warden-dev.ts <command> ...`.
import { main } from '../src/main.js'

process.exitCode = await main(process.argv.slice(2))
