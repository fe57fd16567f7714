using System.CommandLine;
using Lowbit.Quantization.Checkpoints;

namespace Lowbit.Cli.Commands;

/// <summary><c>lowbit quantize --model DIR --quant NAME -o OUT</c>: writes a quantized checkpoint.</summary>
internal static class QuantizeCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var quant = CommonOptions.Quant();
        quant.Required = true;
        var output = new Option<DirectoryInfo>("--output", "-o") { Description = "Directory to write (must not exist or be empty).", Required = true };
        var force = new Option<bool>("--force") { Description = "Replace a non-empty output directory." };
        var command = new Command("quantize", "Quantize a model's linear layers and write the result as a model directory that loads directly.")
        {
            model, quant, output, force,
        };
        command.SetAction(r => CommonOptions.Run(() =>
        {
            var config = CommonOptions.ParseQuant(r.GetValue(quant))
                ?? throw new ArgumentException("--quant: quantize needs a format to write; \"none\" is the model as stored.");
            string source = r.GetValue(model) ?? CommonOptions.BundledModel;
            string outDir = r.GetValue(output)!.FullName;
            var report = QuantizedCheckpoint.Write(source, config, outDir, r.GetValue(force));
            Console.WriteLine(report.Summary());
            Console.WriteLine($"wrote {outDir}");
            return 0;
        }));
        return command;
    }
}
