-- What `citybooks publish redshift://...` sends (crates/publish/src/sql.rs), written
-- against the Amazon Redshift Database Developer Guide: CREATE TABLE (table
-- constraints; DISTSTYLE ALL | KEY, DISTKEY, COMPOUND SORTKEY), CREATE TEMP TABLE
-- (LIKE parent), COPY ... FROM 's3://prefix/' IAM_ROLE 'arn' FORMAT AS PARQUET, LOCK,
-- UPDATE ... [AS] alias SET ... FROM ..., COMMENT ON. Never run on Redshift: no
-- cluster is reachable from where it was built (see the README).
-- once, if the schema has none of the tables (its own transaction)
BEGIN;
CREATE SCHEMA IF NOT EXISTS "report";
CREATE TABLE "report"."program" (
  "program_id" integer NOT NULL,
  "program" varchar(1024) NOT NULL,
  "program_code" varchar(1024) NOT NULL,
  "department" varchar(1024) NOT NULL,
  "department_code" varchar(1024) NOT NULL,
  "organization_group" varchar(1024) NOT NULL,
  "organization_group_code" integer NOT NULL,
  "related_govt_units" varchar(1024) NOT NULL,
  CONSTRAINT "program_pkey" PRIMARY KEY ("program_id")
)
DISTSTYLE ALL;
COMMENT ON TABLE "report"."program" IS 'Who spends or receives: organization group > department > program (the program hierarchy of San Francisco''s Spending and Revenue ledger).';
COMMENT ON COLUMN "report"."program"."program_id" IS 'Key of report.program.';
COMMENT ON COLUMN "report"."program"."program" IS 'Program name; ''No Program'' where the source had none.';
COMMENT ON COLUMN "report"."program"."program_code" IS 'Program code; ''No Program Code'' where the source had none.';
COMMENT ON COLUMN "report"."program"."department" IS 'Department name.';
COMMENT ON COLUMN "report"."program"."department_code" IS 'Department code.';
COMMENT ON COLUMN "report"."program"."organization_group" IS 'Organization group name (7 groups).';
COMMENT ON COLUMN "report"."program"."organization_group_code" IS 'Organization group code (1 to 7).';
COMMENT ON COLUMN "report"."program"."related_govt_units" IS 'Yes for entities related to but separate from the City (e.g. the Community College District), else No.';
CREATE TABLE "report"."type" (
  "type_id" integer NOT NULL,
  "sub_object" varchar(1024) NOT NULL,
  "sub_object_code" varchar(1024) NOT NULL,
  "object" varchar(1024) NOT NULL,
  "object_code" varchar(1024) NOT NULL,
  "character" varchar(1024) NOT NULL,
  "character_code" varchar(1024) NOT NULL,
  CONSTRAINT "type_pkey" PRIMARY KEY ("type_id")
)
DISTSTYLE ALL;
COMMENT ON TABLE "report"."type" IS 'What the money is for: character > object > sub-object (the type hierarchy; character is the broadest, e.g. Salaries, Property Taxes).';
COMMENT ON COLUMN "report"."type"."type_id" IS 'Key of report.type.';
COMMENT ON COLUMN "report"."type"."sub_object" IS 'Sub-object: the finest level of the type hierarchy.';
COMMENT ON COLUMN "report"."type"."sub_object_code" IS 'Sub-object code.';
COMMENT ON COLUMN "report"."type"."object" IS 'Object: the middle level of the type hierarchy.';
COMMENT ON COLUMN "report"."type"."object_code" IS 'Object code.';
COMMENT ON COLUMN "report"."type"."character" IS 'Character: the broadest level of the type hierarchy.';
COMMENT ON COLUMN "report"."type"."character_code" IS 'Character code.';
CREATE TABLE "report"."fund" (
  "fund_id" integer NOT NULL,
  "fund_category" varchar(1024) NOT NULL,
  "fund_category_code" varchar(1024) NOT NULL,
  "fund" varchar(1024) NOT NULL,
  "fund_code" varchar(1024) NOT NULL,
  "fund_type" varchar(1024) NOT NULL,
  "fund_type_code" varchar(1024) NOT NULL,
  CONSTRAINT "fund_pkey" PRIMARY KEY ("fund_id")
)
DISTSTYLE ALL;
COMMENT ON TABLE "report"."fund" IS 'Which fund: fund type > fund > fund category.';
COMMENT ON COLUMN "report"."fund"."fund_id" IS 'Key of report.fund.';
COMMENT ON COLUMN "report"."fund"."fund_category" IS 'Fund category: the finest level of the fund hierarchy.';
COMMENT ON COLUMN "report"."fund"."fund_category_code" IS 'Fund category code.';
COMMENT ON COLUMN "report"."fund"."fund" IS 'Fund name.';
COMMENT ON COLUMN "report"."fund"."fund_code" IS 'Fund code.';
COMMENT ON COLUMN "report"."fund"."fund_type" IS 'Fund type: the broadest level of the fund hierarchy.';
COMMENT ON COLUMN "report"."fund"."fund_type_code" IS 'Fund type code.';
CREATE TABLE "report"."finance" (
  "finance_id" integer NOT NULL,
  "revenue_or_spending" varchar(1024) NOT NULL,
  CONSTRAINT "finance_pkey" PRIMARY KEY ("finance_id")
)
DISTSTYLE ALL;
COMMENT ON TABLE "report"."finance" IS 'Revenue or spending: Spending = 1, Revenue = 2.';
COMMENT ON COLUMN "report"."finance"."finance_id" IS 'Key of report.finance.';
COMMENT ON COLUMN "report"."finance"."revenue_or_spending" IS 'Revenue or Spending.';
CREATE TABLE "report"."transaction" (
  "transaction_id" bigint NOT NULL,
  "fiscal_year" integer NOT NULL,
  "program_id" integer NOT NULL,
  "type_id" integer NOT NULL,
  "fund_id" integer NOT NULL,
  "finance_id" integer NOT NULL,
  "amount" numeric(20,2) NOT NULL,
  "load_id" bigint NOT NULL,
  "source_file" varchar(1024) NOT NULL,
  "source_line" bigint NOT NULL,
  "data_as_of" varchar(1024),
  CONSTRAINT "transaction_pkey" PRIMARY KEY ("transaction_id"),
  CONSTRAINT "transaction_program_id_fkey" FOREIGN KEY ("program_id") REFERENCES "report"."program" ("program_id"),
  CONSTRAINT "transaction_type_id_fkey" FOREIGN KEY ("type_id") REFERENCES "report"."type" ("type_id"),
  CONSTRAINT "transaction_fund_id_fkey" FOREIGN KEY ("fund_id") REFERENCES "report"."fund" ("fund_id"),
  CONSTRAINT "transaction_finance_id_fkey" FOREIGN KEY ("finance_id") REFERENCES "report"."finance" ("finance_id")
)
DISTSTYLE KEY DISTKEY ("program_id") COMPOUND SORTKEY ("fiscal_year", "program_id");
COMMENT ON TABLE "report"."transaction" IS 'The ledger''s facts: one row per fiscal year, program, type, fund and revenue-or-spending, with a signed amount in exact dollars and cents, and the lineage of the row (load, source file and line). Layout: The dimensions are DISTSTYLE ALL, so every join of the fact to them is node-local whatever the fact''s distribution. The fact is distributed on program_id: the dashboard''s group-bys run over the program hierarchy (organization group, department, program), which then aggregate on the node holding each program''s rows, and ~1,300 programs spread evenly enough over the slices. It is sorted on fiscal_year first: every dashboard view and every publish filters on fiscal years, and the zone maps then skip the other years'' blocks.';
COMMENT ON COLUMN "report"."transaction"."transaction_id" IS 'Key of the row; stable across loads of the same fiscal year content.';
COMMENT ON COLUMN "report"."transaction"."fiscal_year" IS 'Fiscal year: July 1 to June 30, named by the year it ends in (2025 = 2024-07-01 to 2025-06-30).';
COMMENT ON COLUMN "report"."transaction"."program_id" IS 'Key of report.program.';
COMMENT ON COLUMN "report"."transaction"."type_id" IS 'Key of report.type.';
COMMENT ON COLUMN "report"."transaction"."fund_id" IS 'Key of report.fund.';
COMMENT ON COLUMN "report"."transaction"."finance_id" IS 'Key of report.finance.';
COMMENT ON COLUMN "report"."transaction"."amount" IS 'Signed amount in dollars, exact to the cent (numeric(20,2)). Transfer adjustments are negative and must stay in totals.';
COMMENT ON COLUMN "report"."transaction"."load_id" IS 'The load that brought the row (meta.loads).';
COMMENT ON COLUMN "report"."transaction"."source_file" IS 'The raw file in the store the row came from.';
COMMENT ON COLUMN "report"."transaction"."source_line" IS 'Line of the row in its source file (1 is the header).';
COMMENT ON COLUMN "report"."transaction"."data_as_of" IS 'When the publisher last updated the row (the API export''s data_as_of), if the file said.';
CREATE TABLE "report"."citybooks_publish" (
  "load_id" bigint NOT NULL,
  "published_at" timestamptz NOT NULL,
  "source" varchar(1024) NOT NULL
)
DISTSTYLE ALL;
COMMENT ON TABLE "report"."citybooks_publish" IS 'Written by citybooks publish, in the transaction that publishes: the citybooks load this schema holds. Do not edit.';
CREATE TABLE "report"."citybooks_publish_years" (
  "fiscal_year" integer NOT NULL,
  "row_count" bigint NOT NULL,
  "amount" numeric(20,2) NOT NULL,
  "load_id" bigint NOT NULL,
  CONSTRAINT "citybooks_publish_years_pkey" PRIMARY KEY ("fiscal_year")
)
DISTSTYLE ALL;
COMMENT ON TABLE "report"."citybooks_publish_years" IS 'Written by citybooks publish: each fiscal year''s rows and total in transaction as published, to detect a target changed by other hands. Do not edit.';
COMMIT;
-- every publish: one transaction
BEGIN;
LOCK "report"."citybooks_publish";
SELECT "load_id" FROM "report"."citybooks_publish" ORDER BY "load_id" DESC;
SELECT "fiscal_year", "row_count", CAST("amount" AS varchar) FROM "report"."citybooks_publish_years" ORDER BY "fiscal_year";
SELECT "fiscal_year", count(*)::bigint, CAST(COALESCE(sum("amount"), 0) AS varchar) FROM "report"."transaction" GROUP BY "fiscal_year" ORDER BY "fiscal_year";
CREATE TEMP TABLE "citybooks_stage_program" (LIKE "report"."program");
COPY "citybooks_stage_program" FROM 's3://bucket/city/publish/cluster-5439-dev/5/program/' IAM_ROLE 'arn:aws:iam::123456789012:role/citybooks' FORMAT AS PARQUET;
UPDATE "report"."program" AS t SET "program" = s."program", "program_code" = s."program_code", "department" = s."department", "department_code" = s."department_code", "organization_group" = s."organization_group", "organization_group_code" = s."organization_group_code", "related_govt_units" = s."related_govt_units" FROM "citybooks_stage_program" AS s WHERE t."program_id" = s."program_id" AND (t."program" <> s."program" OR t."program_code" <> s."program_code" OR t."department" <> s."department" OR t."department_code" <> s."department_code" OR t."organization_group" <> s."organization_group" OR t."organization_group_code" <> s."organization_group_code" OR t."related_govt_units" <> s."related_govt_units");
INSERT INTO "report"."program" ("program_id", "program", "program_code", "department", "department_code", "organization_group", "organization_group_code", "related_govt_units") SELECT s."program_id", s."program", s."program_code", s."department", s."department_code", s."organization_group", s."organization_group_code", s."related_govt_units" FROM "citybooks_stage_program" AS s WHERE NOT EXISTS (SELECT 1 FROM "report"."program" AS t WHERE t."program_id" = s."program_id");
DROP TABLE IF EXISTS "citybooks_stage_program";
CREATE TEMP TABLE "citybooks_stage_type" (LIKE "report"."type");
COPY "citybooks_stage_type" FROM 's3://bucket/city/publish/cluster-5439-dev/5/type/' IAM_ROLE 'arn:aws:iam::123456789012:role/citybooks' FORMAT AS PARQUET;
UPDATE "report"."type" AS t SET "sub_object" = s."sub_object", "sub_object_code" = s."sub_object_code", "object" = s."object", "object_code" = s."object_code", "character" = s."character", "character_code" = s."character_code" FROM "citybooks_stage_type" AS s WHERE t."type_id" = s."type_id" AND (t."sub_object" <> s."sub_object" OR t."sub_object_code" <> s."sub_object_code" OR t."object" <> s."object" OR t."object_code" <> s."object_code" OR t."character" <> s."character" OR t."character_code" <> s."character_code");
INSERT INTO "report"."type" ("type_id", "sub_object", "sub_object_code", "object", "object_code", "character", "character_code") SELECT s."type_id", s."sub_object", s."sub_object_code", s."object", s."object_code", s."character", s."character_code" FROM "citybooks_stage_type" AS s WHERE NOT EXISTS (SELECT 1 FROM "report"."type" AS t WHERE t."type_id" = s."type_id");
DROP TABLE IF EXISTS "citybooks_stage_type";
CREATE TEMP TABLE "citybooks_stage_fund" (LIKE "report"."fund");
COPY "citybooks_stage_fund" FROM 's3://bucket/city/publish/cluster-5439-dev/5/fund/' IAM_ROLE 'arn:aws:iam::123456789012:role/citybooks' FORMAT AS PARQUET;
UPDATE "report"."fund" AS t SET "fund_category" = s."fund_category", "fund_category_code" = s."fund_category_code", "fund" = s."fund", "fund_code" = s."fund_code", "fund_type" = s."fund_type", "fund_type_code" = s."fund_type_code" FROM "citybooks_stage_fund" AS s WHERE t."fund_id" = s."fund_id" AND (t."fund_category" <> s."fund_category" OR t."fund_category_code" <> s."fund_category_code" OR t."fund" <> s."fund" OR t."fund_code" <> s."fund_code" OR t."fund_type" <> s."fund_type" OR t."fund_type_code" <> s."fund_type_code");
INSERT INTO "report"."fund" ("fund_id", "fund_category", "fund_category_code", "fund", "fund_code", "fund_type", "fund_type_code") SELECT s."fund_id", s."fund_category", s."fund_category_code", s."fund", s."fund_code", s."fund_type", s."fund_type_code" FROM "citybooks_stage_fund" AS s WHERE NOT EXISTS (SELECT 1 FROM "report"."fund" AS t WHERE t."fund_id" = s."fund_id");
DROP TABLE IF EXISTS "citybooks_stage_fund";
CREATE TEMP TABLE "citybooks_stage_finance" (LIKE "report"."finance");
COPY "citybooks_stage_finance" FROM 's3://bucket/city/publish/cluster-5439-dev/5/finance/' IAM_ROLE 'arn:aws:iam::123456789012:role/citybooks' FORMAT AS PARQUET;
UPDATE "report"."finance" AS t SET "revenue_or_spending" = s."revenue_or_spending" FROM "citybooks_stage_finance" AS s WHERE t."finance_id" = s."finance_id" AND (t."revenue_or_spending" <> s."revenue_or_spending");
INSERT INTO "report"."finance" ("finance_id", "revenue_or_spending") SELECT s."finance_id", s."revenue_or_spending" FROM "citybooks_stage_finance" AS s WHERE NOT EXISTS (SELECT 1 FROM "report"."finance" AS t WHERE t."finance_id" = s."finance_id");
DROP TABLE IF EXISTS "citybooks_stage_finance";
CREATE TEMP TABLE "citybooks_stage_transaction" (LIKE "report"."transaction");
COPY "citybooks_stage_transaction" FROM 's3://bucket/city/publish/cluster-5439-dev/5/transaction/' IAM_ROLE 'arn:aws:iam::123456789012:role/citybooks' FORMAT AS PARQUET;
DELETE FROM "report"."transaction" WHERE "fiscal_year" IN (2024, 2025);
INSERT INTO "report"."transaction" ("transaction_id", "fiscal_year", "program_id", "type_id", "fund_id", "finance_id", "amount", "load_id", "source_file", "source_line", "data_as_of") SELECT "transaction_id", "fiscal_year", "program_id", "type_id", "fund_id", "finance_id", "amount", "load_id", "source_file", "source_line", "data_as_of" FROM "citybooks_stage_transaction";
DROP TABLE IF EXISTS "citybooks_stage_transaction";
DELETE FROM "report"."citybooks_publish";
INSERT INTO "report"."citybooks_publish" ("load_id", "published_at", "source") VALUES (5, CAST('2026-11-30 08:00:00.000000+00' AS timestamptz), 'citybooks 0.1.0 load 5');
DELETE FROM "report"."citybooks_publish_years" WHERE "fiscal_year" IN (2024, 2025);
INSERT INTO "report"."citybooks_publish_years" ("fiscal_year", "row_count", "amount", "load_id") VALUES (2024, 1266, 3701234567.89, 5), (2025, 2186, 3850095730.53, 5);
COMMIT;
