// pgjdbc (Debian libpostgresql-jdbc-java) against `citybooks serve`: what DBeaver,
// Metabase and other JDBC tools call when they sync a database: DatabaseMetaData's
// schemas, tables, columns, primary keys and foreign keys (both ways), then a
// PreparedStatement with a parameter and BigDecimal amounts.
// Usage: java -cp /usr/share/java/postgresql.jar Client.java PORT USER PASSWORD
// Prints one line per finding, "key<TAB>value", or "error<TAB>call<TAB>message".
import java.math.BigDecimal;
import java.sql.*;
import java.util.*;

public class Client {
    static void rows(String key, ResultSet rs, String... columns) throws SQLException {
        while (rs.next()) {
            StringJoiner j = new StringJoiner("|");
            for (String c : columns) j.add(String.valueOf(rs.getString(c)));
            System.out.println(key + "\t" + j);
        }
    }

    interface Call { void run() throws SQLException; }

    static void attempt(String name, Call call) {
        try {
            call.run();
        } catch (SQLException e) {
            System.out.println("error\t" + name + "\t" + e.getMessage().replace('\n', ' '));
        }
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/citybooks";
        try (Connection c = DriverManager.getConnection(url, args[1], args[2])) {
            DatabaseMetaData md = c.getMetaData();
            System.out.println("product\t" + md.getDatabaseProductName() + " " + md.getDatabaseProductVersion());
            attempt("getSchemas", () -> rows("schema", md.getSchemas(), "TABLE_SCHEM"));
            attempt("getTables", () -> rows("table", md.getTables(null, "report", "%", new String[] {"TABLE"}), "TABLE_NAME", "REMARKS"));
            attempt("getColumns", () -> rows("column", md.getColumns(null, "report", "transaction", "%"), "COLUMN_NAME", "TYPE_NAME", "COLUMN_SIZE", "DECIMAL_DIGITS", "IS_NULLABLE"));
            attempt("getPrimaryKeys", () -> rows("pk", md.getPrimaryKeys(null, "report", "transaction"), "COLUMN_NAME", "PK_NAME"));
            attempt("getImportedKeys", () -> rows("imported", md.getImportedKeys(null, "report", "transaction"), "FKCOLUMN_NAME", "PKTABLE_SCHEM", "PKTABLE_NAME", "PKCOLUMN_NAME", "FK_NAME"));
            attempt("getExportedKeys", () -> rows("exported", md.getExportedKeys(null, "report", "program"), "FKTABLE_NAME", "FKCOLUMN_NAME", "PKCOLUMN_NAME"));
            attempt("prepared", () -> {
                try (PreparedStatement ps = c.prepareStatement(
                        "select count(*), sum(t.amount) from report.transaction t "
                        + "join report.finance f on t.finance_id = f.finance_id where f.revenue_or_spending = ?")) {
                    ps.setString(1, "Revenue");
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        BigDecimal total = rs.getBigDecimal(2);
                        System.out.println("prepared\t" + rs.getLong(1) + "|" + total.toPlainString());
                    }
                }
            });
        }
    }
}
