import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
ok = True
for sa, sb in zip(a["stages"], b["stages"]):
    for k in ("stage", "accuracy", "params", "file", "size_bytes", "gzip_bytes", "sparsity", "agreement_with_keras", "ops"):
        if sa.get(k) != sb.get(k):
            ok = False
            print("DIFF", sa["stage"], k, sa.get(k), sb.get(k))
    print(sa["stage"], sa["accuracy"], sb["accuracy"], sa["params"], sa["size_bytes"], sb["size_bytes"], sa["gzip_bytes"], sb["gzip_bytes"])
print("compression_steps equal:", a["compression_steps"] == b["compression_steps"])
print("verified equal:", a["verified_in_tflite"] == b["verified_in_tflite"], a["verified_in_tflite"])
print("data equal:", a["data"] == b["data"])
print("IDENTICAL" if ok and len(a["stages"]) == len(b["stages"]) else "DIFFERENT")
