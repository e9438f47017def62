/*
 * Starts Apache Iceberg's REST catalog test fixture (the server of the apache/iceberg-rest-fixture
 * docker image) on 127.0.0.1 only.
 *
 * The fixture's own main, org.apache.iceberg.rest.RESTCatalogServer, binds every interface
 * (Jetty's `new Server(port)`). This launcher reuses the fixture's pieces unchanged: its backend
 * catalog set-up (RESTCatalogServer#initializeBackendCatalog: the same CATALOG_* environment
 * variables, e.g. CATALOG_CATALOG__IMPL, CATALOG_URI, CATALOG_WAREHOUSE, CATALOG_REST_PORT, and
 * the same defaults: JdbcCatalog, jdbc.schema-version=V1), its RESTServerCatalogAdapter and
 * iceberg-core's RESTCatalogServlet, and only puts them behind a Jetty connector on 127.0.0.1.
 *
 * Port: CATALOG_REST_PORT, default 0 (a free port). Prints "CALVING_REST_FIXTURE_PORT=<port>" on
 * stdout once it accepts requests, and exits when its stdin reaches end of file, so the server
 * stops with the test process that started it even if that process is killed.
 */
package org.apache.iceberg.rest;

import java.lang.reflect.Method;
import org.apache.iceberg.util.PropertyUtil;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.handler.gzip.GzipHandler;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;

public final class CalvingRestFixture {
  private CalvingRestFixture() {}

  public static void main(String[] args) throws Exception {
    RESTCatalogServer fixture = new RESTCatalogServer();
    Method init = RESTCatalogServer.class.getDeclaredMethod("initializeBackendCatalog");
    init.setAccessible(true);
    RESTCatalogServer.CatalogContext context = (RESTCatalogServer.CatalogContext) init.invoke(fixture);

    RESTCatalogServlet servlet = new RESTCatalogServlet(new RESTServerCatalogAdapter(context));
    ServletContextHandler handler = new ServletContextHandler(ServletContextHandler.NO_SESSIONS);
    handler.addServlet(new ServletHolder(servlet), "/*");
    handler.insertHandler(new GzipHandler());

    Server http = new Server();
    ServerConnector connector = new ServerConnector(http);
    connector.setHost("127.0.0.1");
    connector.setPort(PropertyUtil.propertyAsInt(context.configuration(), "rest.port", 0));
    http.addConnector(connector);
    http.setHandler(handler);
    http.start();
    System.out.println("CALVING_REST_FIXTURE_PORT=" + connector.getLocalPort());
    System.out.flush();

    while (System.in.read() != -1) {
      // wait for the parent to close our stdin
    }
    http.stop();
    System.exit(0);
  }
}
