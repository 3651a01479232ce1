"""Model registry: what AMP knows (manifest), where files are (locate), how to get them (download).

manifest   models/manifest.toml parsed into typed, frozen entries
locate     lookup order (path > $AMP_MODELS_DIR > checkout models/ > user cache)
download   fetch with resume and sha256 checks; verify files in place
"""
