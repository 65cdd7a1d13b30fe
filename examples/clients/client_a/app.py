# Client A's application: a one-page Flask app, like the tutorial's.
from flask import Flask
app = Flask(__name__)

@app.route("/")
def hello():
    return "Hello from client A!"
