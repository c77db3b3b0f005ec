std = "max"
max_line_length = 140
files["tests/"] = { std = "+busted" }
exclude_files = { "build/", "build*/", ".luarocks/", "lua_modules/" }
