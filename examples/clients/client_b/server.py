# Serves app.py with CherryPy's WSGI server on 0.0.0.0:80, as the tutorial's
# server.py does (see examples/tutorial/my_application/server.py).
import cherrypy

from app import app

cherrypy.tree.graft(app, "/")
cherrypy.server.unsubscribe()
server = cherrypy._cpserver.Server()
server.socket_host = "0.0.0.0"
server.socket_port = 80
server.thread_pool = 10
server.subscribe()
cherrypy.engine.autoreload.unsubscribe()
cherrypy.engine.signal_handler.subscribe()   # PID 1: stop on SIGTERM
cherrypy.engine.start()
cherrypy.engine.block()
