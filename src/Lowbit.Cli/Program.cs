using System.CommandLine;
using Lowbit.Cli.Commands;

var root = new RootCommand("lowbit: run and measure Llama-family language models in .NET, on the CPU or an NVIDIA GPU.")
{
    GenerateCommand.Create(),
    EvalCommand.Create(),
    InfoCommand.Create(),
    BenchCommand.Create(),
    ImportCommand.Create(),
    QuantizeCommand.Create(),
    SelfTestCommand.Create(),
};
return root.Parse(args).Invoke();
