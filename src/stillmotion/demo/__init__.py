"""`stillmotion demo`: a local web page over the pipeline API (Gradio; `pip install -e ".[demo]"`).

jobs.py holds what a request does (checks against caps, one pipeline call, the MP4, the reproducing shell line)
and imports no Gradio; app.py lays out the page and serves it; browser.py drives it in headless Chromium (the
browser test and the README's screenshot).
"""
