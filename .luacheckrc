std = "lua54"
max_line_length = 120
files["spec/**/*.lua"] = { std = "+busted" }
files["bin/**"] = { std = "lua54" }
exclude_files = { ".venv/**", "build/**" }
include_files = { "**/*.lua", "bin/**", "examples/lambda/bootstrap" } -- these scripts have no .lua suffix
