std = "max"
max_line_length = 140
files["tests/"] = { std = "+busted", read_globals = { "with_close" } }
files["tests/helper.lua"] = { globals = { "with_close" } }
exclude_files = { "build/", "build*/", ".luarocks/", "lua_modules/" }
