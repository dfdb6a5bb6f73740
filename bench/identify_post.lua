-- wrk script: POST one image to /identify (k=5) as multipart/form-data.
-- IMG names the file.
local function slurp(p) local f = assert(io.open(p, "rb")); local s = f:read("*a"); f:close(); return s end
local img = slurp(os.getenv("IMG") or "tests/data/img/fm2_c1.png")
local k = "----siamesedbenchidentify"
wrk.method = "POST"
wrk.body = "--" .. k .. "\r\nContent-Disposition: form-data; name=\"image\"; filename=\"q.png\"\r\n" ..
           "Content-Type: image/png\r\n\r\n" .. img .. "\r\n--" .. k .. "\r\n" ..
           "Content-Disposition: form-data; name=\"k\"\r\n\r\n5\r\n--" .. k .. "--\r\n"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. k
