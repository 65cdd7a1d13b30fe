# The tutorial's sample application: a single-page Flask "Hello World!".
# `app` is the WSGI callable server.py serves.
from flask import Flask
app = Flask(__name__)

@app.route("/")
def hello():
    return "Hello World!"

if __name__ == "__main__":
    app.run()
