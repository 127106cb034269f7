// CDK local bundling with lambda-compat: an ILocalBundling for lambda.Code.fromAsset(...).
//
//   const { LambdaCompatBundling } = require("./local-bundling");
//   new lambda.Function(this, "Hello", {
//     runtime: lambda.Runtime.PYTHON_3_12, architecture: lambda.Architecture.ARM_64,
//     handler: "app.handler",
//     code: lambda.Code.fromAsset(path.join(__dirname, "function"), {
//       bundling: {
//         image: lambda.Runtime.PYTHON_3_12.bundlingImage,   // only if local bundling fails
//         local: new LambdaCompatBundling(path.join(__dirname, "function"), "python3.12", "arm64"),
//       },
//     }),
//   });
//
// CDK calls tryBundle(outputDir) with an empty directory; returning true means "done locally",
// so no container is needed: the dependencies are resolved and built for the Lambda target.
"use strict";
const { execFileSync } = require("child_process");
const fs = require("fs");
const path = require("path");

class LambdaCompatBundling {
  constructor(sourceDir, runtime, architecture, extraArgs = []) {
    this.sourceDir = sourceDir;
    this.runtime = runtime;
    this.architecture = architecture;
    this.extraArgs = extraArgs;
  }

  tryBundle(outputDir) {
    const exe = process.env.LAMBDA_COMPAT || "lambda-compat";
    try {
      execFileSync(exe, ["build", "-r", path.join(this.sourceDir, "requirements.txt"),
        "--runtime", this.runtime, "--arch", this.architecture, "-o", outputDir,
        ...this.extraArgs], { stdio: "inherit" });
    } catch (err) {
      if (err.code === "ENOENT") return false;  // not installed: let CDK use the image
      throw err;                                  // a real verdict: fail the synth loudly
    }
    for (const name of fs.readdirSync(this.sourceDir)) {
      if (name === "requirements.txt") continue;
      fs.cpSync(path.join(this.sourceDir, name), path.join(outputDir, name), { recursive: true });
    }
    return true;
  }
}

module.exports = { LambdaCompatBundling };
