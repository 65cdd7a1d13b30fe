# Serves the application in app.py with CherryPy's production WSGI server,
# as the tutorial's server.py does: all interfaces, port 80, 30 threads.
#
# SSL is switched on when a certificate and its private key are given, in
# the environment (so one image serves both ways):
#   SSL_CERTIFICATE=ssl/certificate.crt SSL_PRIVATE_KEY=ssl/private.key
#   SSL_CERTIFICATE_CHAIN=ssl/bundle.crt   (optional)
# e.g. berth run -v "$PWD/ssl:/my_application/ssl:ro" -e SSL_CERTIFICATE=... -p 443:80 ...

import os

from app import app

# Import CherryPy
import cherrypy

if __name__ == '__main__':

    # Mount the application
    cherrypy.tree.graft(app, "/")

    # Unsubscribe the default server
    cherrypy.server.unsubscribe()

    # Instantiate a new server object
    server = cherrypy._cpserver.Server()

    # Configure the server object
    server.socket_host = "0.0.0.0"
    server.socket_port = 80
    server.thread_pool = 30

    # For SSL Support.  The tutorial named 'pyopenssl'; 'builtin' is
    # Python's own ssl module, so no extra package is needed.
    certificate = os.environ.get("SSL_CERTIFICATE")
    private_key = os.environ.get("SSL_PRIVATE_KEY")
    if certificate and private_key:
        server.ssl_module = 'builtin'
        server.ssl_certificate = certificate
        server.ssl_private_key = private_key
        server.ssl_certificate_chain = os.environ.get("SSL_CERTIFICATE_CHAIN") or None

    # Subscribe this server
    server.subscribe()

    # Stop cleanly on SIGTERM (`berth stop`): in a container this process is
    # PID 1, and PID 1 ignores every signal it has no handler for.
    cherrypy.engine.signal_handler.subscribe()

    # The autoreloader, on by default, checks every module's mtime each
    # second to restart on code changes: a development aid, not for serving.
    cherrypy.engine.autoreload.unsubscribe()

    # Start the server engine (Option 1 *and* 2)

    cherrypy.engine.start()
    cherrypy.engine.block()
