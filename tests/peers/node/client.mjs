// Node.js's `pg` driver against `citybooks serve`: SCRAM login, a query with a bound
// parameter (extended protocol), numeric amounts as exact strings, the catalog's keys.
// Usage: node client.mjs PORT USER PASSWORD. Prints one JSON object.
import pg from "pg";

const [port, user, password] = process.argv.slice(2);
const client = new pg.Client({
  host: "127.0.0.1",
  port: Number(port),
  user,
  password,
  database: "citybooks",
});
await client.connect();
const out = {};
out.version = (await client.query("select version() as v")).rows[0].v;
out.who = (await client.query("select current_user as u, current_database() as d")).rows[0];
const bound = await client.query(
  "select count(*) as n, sum(t.amount) as total from report.transaction t " +
    "join report.finance f on t.finance_id = f.finance_id where f.revenue_or_spending = $1",
  ["Revenue"],
);
out.bound_n = String(bound.rows[0].n);
out.bound_total = bound.rows[0].total;
out.amount_type = typeof bound.rows[0].total;
const fks = await client.query(
  "select conname from pg_catalog.pg_constraint where contype = 'f' order by conname",
);
out.foreign_keys = fks.rows.map((r) => r.conname);
await client.end();
console.log(JSON.stringify(out));
